module github.com/taskevents/taskevents/kit

go 1.26.5
