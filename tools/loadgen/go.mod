module todo-platform/tools/loadgen

go 1.24

require todo-platform/tools/internal/loadkit v0.0.0

// The shared load kit lives in this repository (no module proxy involved).
replace todo-platform/tools/internal/loadkit => ../internal/loadkit
