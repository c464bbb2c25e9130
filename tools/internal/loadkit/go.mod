module todo-platform/tools/internal/loadkit

go 1.24
