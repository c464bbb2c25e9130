module todo-platform/tools/loadgen

go 1.24
