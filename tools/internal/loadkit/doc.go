// Package loadkit holds what the benchmarks' load generators (tools/loadgen, tools/streamgen)
// share: the -command/-query/-tokens flags and the file of user tokens (target.go), the
// open-model schedule and creating a task as a user (load.go), and counting failures, latency
// percentiles and the JSON lines they print (report.go). Standard library only.
package loadkit
