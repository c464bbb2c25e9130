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
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

type sample struct {
	position  string
	sent      time.Time
	answered  time.Time
	visible   time.Time
	scheduled time.Time
}

type result struct {
	mu      sync.Mutex
	samples []sample
	stale   int
	errors  int
	lastErr string
}

func (r *result) fail(err string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors++
	r.lastErr = err
}

type generator struct {
	client  *http.Client
	command string
	query   string
	tokens  []string
}

// one sends a command and its read-your-writes read, and records the outcome.
func (g *generator) one(i int, scheduled time.Time, into *result) {
	token := "Bearer " + g.tokens[i%len(g.tokens)]
	body := fmt.Sprintf(`{"title":"freshness %d"}`, i)
	req, _ := http.NewRequest(http.MethodPost, g.command+"/tasks", strings.NewReader(body))
	req.Header.Set("Authorization", token)
	req.Header.Set("Content-Type", "application/json")
	sent := time.Now()
	resp, err := g.client.Do(req)
	if err != nil {
		into.fail(err.Error())
		return
	}
	payload, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	answered := time.Now()
	position := resp.Header.Get("X-Event-Position")
	var created struct {
		ID string `json:"id"`
	}
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(payload, &created) != nil || position == "" {
		into.fail(fmt.Sprintf("POST /tasks: %d %s", resp.StatusCode, bytes.TrimSpace(payload)))
		return
	}
	read, _ := http.NewRequest(http.MethodGet, g.query+"/tasks/"+created.ID, nil)
	read.Header.Set("Authorization", token)
	read.Header.Set("X-Min-Position", position)
	resp, err = g.client.Do(read)
	if err != nil {
		into.fail(err.Error())
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
	into.samples = append(into.samples, sample{position, sent, answered, visible, scheduled})
}

// run starts rate*seconds commands at fixed intervals (open model) and waits for all of them.
func (g *generator) run(rate float64, seconds float64, offset int) *result {
	into := &result{}
	var wg sync.WaitGroup
	n := int(rate * seconds)
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for i := 0; i < n; i++ {
		scheduled := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(scheduled))
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			g.one(offset+i, scheduled, into)
		}(i)
	}
	wg.Wait()
	return into
}

func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	// nearest rank: the smallest value with at least p of the samples at or below it
	rank := int(p*float64(len(sorted))+0.999999) - 1
	if rank < 0 {
		rank = 0
	}
	if rank >= len(sorted) {
		rank = len(sorted) - 1
	}
	return sorted[rank]
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func summary(ds []float64) map[string]float64 {
	sort.Float64s(ds)
	max := 0.0
	if len(ds) > 0 {
		max = ds[len(ds)-1]
	}
	return map[string]float64{"p50": percentile(ds, 0.50), "p99": percentile(ds, 0.99), "max": max}
}

func report(r *result, rate, seconds float64) map[string]any {
	var fresh, command, late []float64
	for _, s := range r.samples {
		fresh = append(fresh, millis(s.visible.Sub(s.answered)))
		command = append(command, millis(s.answered.Sub(s.scheduled)))
		late = append(late, millis(s.sent.Sub(s.scheduled)))
	}
	return map[string]any{
		"rate": rate, "seconds": seconds, "samples": len(r.samples), "stale": r.stale,
		"errors": r.errors, "last_error": r.lastErr,
		"freshness_ms": summary(fresh), "command_ms": summary(command), "send_late_ms": summary(late),
	}
}

func readTokens(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var tokens []string
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		if t := strings.TrimSpace(scanner.Text()); t != "" {
			tokens = append(tokens, t)
		}
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("%s holds no token", path)
	}
	return tokens, scanner.Err()
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
	command := flag.String("command", "http://127.0.0.1:8001", "command API base URL")
	query := flag.String("query", "http://127.0.0.1:8002", "query API base URL")
	tokensFile := flag.String("tokens", "", "file with one JWT per line (one per user)")
	rate := flag.Float64("rate", 200, "commands per second (open model)")
	seconds := flag.Float64("seconds", 10, "measured seconds")
	warmup := flag.Float64("warmup", 2, "seconds of load before measuring (not reported)")
	samplesFile := flag.String("samples", "", "write `position answered_us visible_us` lines here")
	flag.Parse()
	tokens, err := readTokens(*tokensFile)
	if err != nil || *rate <= 0 {
		fmt.Fprintln(os.Stderr, "loadgen: need -tokens FILE and -rate > 0:", err)
		os.Exit(2)
	}
	transport := &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute}
	g := &generator{
		client:  &http.Client{Transport: transport, Timeout: 30 * time.Second},
		command: strings.TrimRight(*command, "/"), query: strings.TrimRight(*query, "/"), tokens: tokens,
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
	out, _ := json.Marshal(report(measured, *rate, *seconds))
	fmt.Println(string(out))
}
