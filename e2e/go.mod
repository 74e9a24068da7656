module github.com/taskevents/taskevents/e2e

go 1.26.5
