# A Python publisher (task-api) written as Dapr's Python SDK lessons write it (FastAPI,
# DaprClient per request): a bench anchor, the
# baseline a learner starts from. Deliberately NOT improved: a new DaprClient (a new gRPC
# channel) per request, a blocking publish inside an async handler, no validation, no
# error handling. Only names are ours, and they already match: pubsub "pubsub", topic
# "task-events". Run it with uvicorn, as the lesson's Dockerfile does (see
# tools/bench/README.md):
#   DAPR_GRPC_PORT=50001 uvicorn main:app --app-dir tools/bench/python/publisher --port 8000
# task-api/main.py
from dapr.clients import DaprClient
from fastapi import FastAPI
from pydantic import BaseModel
import json
import uuid
app = FastAPI()
class Task(BaseModel):
    title: str
@app.post("/tasks")
async def create_task(task: Task):
    task_id = str(uuid.uuid4())
    with DaprClient() as client:
        client.publish_event(
            pubsub_name="pubsub",
            topic_name="task-events",
            data=json.dumps({
                "event_type": "task.created",
                "task_id": task_id,
                "title": task.title,
            }),
            data_content_type="application/json",
        )
    return {"id": task_id, "title": task.title, "event": "published"}
