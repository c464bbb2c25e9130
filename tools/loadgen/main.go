// loadgen measures freshness: how long after the command API answers a command the query API shows
// it. It drives an OPEN model (commands start at a fixed arrival rate, whatever the system's
// latency, so a slow system cannot slow the load down and hide its own tail) of POST /tasks spread
// round-robin over the users whose JWTs it is given, and for each command it times a
// GET /tasks/{id} sent with X-Min-Position = the answer's X-Event-Position, from the command's
// answer to the read's answer. A read answered with X-Stale or not 200 counts as stale, not as a
// sample. It is small and native so that the load generator takes little of the machine it
// measures (bench/bench_freshness.py reports its CPU share).
//
//	loadgen -command URL -query URL -tokens FILE -rate 200 -seconds 10 [-warmup 2] [-samples FILE]
//
// Prints one JSON object (counts, freshness and command latency percentiles in ms, how late the
// generator started commands); -samples writes one line per measured command:
// `position answered_unix_us visible_unix_us` (for the per-hop breakdown).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"todo-platform/tools/internal/loadkit"
)

type sample struct {
	position  string
	sent      time.Time
	answered  time.Time
	visible   time.Time
	scheduled time.Time
}

type result struct {
	loadkit.Failures
	mu      sync.Mutex
	samples []sample
	stale   int
}

type generator struct {
	client *http.Client
	poster loadkit.Poster
	query  string
	tokens []string
}

// one sends a command and its read-your-writes read, and records the outcome.
func (g *generator) one(i int, scheduled time.Time, into *result) {
	token := g.tokens[i%len(g.tokens)]
	created, err := g.poster.Create(token, fmt.Sprintf("freshness %d", i))
	if err != nil {
		into.Add(err.Error())
		return
	}
	read, _ := http.NewRequest(http.MethodGet, g.query+"/tasks/"+created.ID, nil)
	read.Header.Set("Authorization", "Bearer "+token)
	read.Header.Set("X-Min-Position", created.Position)
	resp, err := g.client.Do(read)
	if err != nil {
		into.Add(err.Error())
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	visible := time.Now()
	into.mu.Lock()
	defer into.mu.Unlock()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Stale") != "" {
		into.stale++
		return
	}
	into.samples = append(into.samples, sample{created.Position, created.Sent, created.Answered, visible, scheduled})
}

// run starts rate*seconds commands at fixed intervals (open model) and waits for all of them.
func (g *generator) run(rate float64, seconds float64, offset int) *result {
	into := &result{}
	loadkit.OpenModel(rate, seconds, func(i int, scheduled time.Time) { g.one(offset+i, scheduled, into) })
	return into
}

func report(r *result, rate, seconds float64) map[string]any {
	var fresh, command, late []float64
	for _, s := range r.samples {
		fresh = append(fresh, loadkit.Millis(s.visible.Sub(s.answered)))
		command = append(command, loadkit.Millis(s.answered.Sub(s.scheduled)))
		late = append(late, loadkit.Millis(s.sent.Sub(s.scheduled)))
	}
	errors, lastErr := r.Snapshot()
	return map[string]any{
		"rate": rate, "seconds": seconds, "samples": len(r.samples), "stale": r.stale,
		"errors": errors, "error_kinds": r.Kinds(), "last_error": lastErr,
		"freshness_ms": loadkit.Percentiles(fresh),
		"command_ms":   loadkit.Percentiles(command),
		"send_late_ms": loadkit.Percentiles(late),
	}
}

func writeSamples(path string, r *result) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, s := range r.samples {
		fmt.Fprintf(w, "%s %d %d\n", s.position, s.answered.UnixMicro(), s.visible.UnixMicro())
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

func main() {
	target := loadkit.TargetFlags("file with one JWT per line (one per user)")
	rate := flag.Float64("rate", 200, "commands per second (open model)")
	seconds := flag.Float64("seconds", 10, "measured seconds")
	warmup := flag.Float64("warmup", 2, "seconds of load before measuring (not reported)")
	samplesFile := flag.String("samples", "", "write `position answered_us visible_us` lines here")
	flag.Parse()
	tokens, err := target.Tokens()
	if err != nil || *rate <= 0 {
		fmt.Fprintln(os.Stderr, "loadgen: need -tokens FILE and -rate > 0:", err)
		os.Exit(2)
	}
	transport := &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute}
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	g := &generator{
		client: client,
		poster: loadkit.Poster{Client: client, URL: target.CommandURL("/tasks"), NeedPosition: true},
		query:  target.QueryURL(""), tokens: tokens,
	}
	if *warmup > 0 {
		g.run(*rate, *warmup, 0)
	}
	measured := g.run(*rate, *seconds, int(*rate**warmup))
	if *samplesFile != "" {
		if err := writeSamples(*samplesFile, measured); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
	}
	loadkit.Emit(report(measured, *rate, *seconds))
}
