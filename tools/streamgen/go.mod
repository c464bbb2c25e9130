module todo-platform/tools/streamgen

go 1.24
