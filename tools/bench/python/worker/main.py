# A Python worker (task-worker) written as Dapr's Python SDK lessons write it (FastAPI,
# dapr-ext-fastapi, programmatic subscription): a
# bench anchor, the baseline a learner starts from. Deliberately NOT improved: one INFO log
# line per event, no dedupe. daprd learns the subscription from GET /dapr/subscribe, which
# DaprApp serves, so run its daprd with --app-port and WITHOUT subscriptions/ in its
# resources path (see tools/bench/README.md):
#   uvicorn main:app --app-dir tools/bench/python/worker --port 8001
# task-worker/main.py (programmatic approach)
from fastapi import FastAPI
from dapr.ext.fastapi import DaprApp
import logging
logging.basicConfig(level=logging.INFO)
logger = logging.getLogger(__name__)
app = FastAPI()
dapr_app = DaprApp(app)
# Changed from the lesson: route="/events/todo" (the lesson lets DaprApp pick
# /events/pubsub/task-events), so the worker, the no-op worker and this one share one path.
@dapr_app.subscribe(pubsub="pubsub", topic="task-events", route="/events/todo")
async def handle_task_event(event_data: dict):
    logger.info(f"EVENT RECEIVED: {event_data}")
    return {"status": "SUCCESS"}
