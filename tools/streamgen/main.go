// streamgen measures live updates: how long after the command API answers a command the change
// arrives on the user's open GET /stream (Server-Sent Events). It opens one stream per user token,
// waits for every stream's `event: ready`, then drives an OPEN model (commands start at fixed
// times whatever the system's latency, so a slow system cannot slow the load and hide its tail):
// each user gets one POST /tasks per second, the users spread evenly over the second (N users ->
// N commands/s). One sample per command: from the POST's answer to the arrival of the
// `event: task` message carrying that task's id on that user's stream. A command whose message
// does not arrive within -timeout counts as missed, not as a sample.
//
//	streamgen -command URL -query URL -tokens FILE -seconds 30 [-pause 3] [-timeout 5] [-rate R]
//
// -rate sets another command rate over the same streams (round-robin over the users), to tell
// the cost of open streams from the cost of the write rate.
//
// Prints two JSON lines on stdout: {"phase":"open",...} once every stream is ready (then waits
// -pause seconds before the load, so the caller can measure the server with all streams open and
// idle), and the result (counts, latency percentiles in ms, how late commands were sent).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"todo-platform/tools/internal/loadkit"
)

// pending pairs a command's answer with its message, whichever comes first.
type pending struct {
	answered time.Time
	arrived  time.Time
}

type tracker struct {
	loadkit.Failures
	mu            sync.Mutex
	byTask        map[string]*pending
	latencies     []float64 // ms, answer -> message
	beforeAnswer  int       // messages that arrived before the POST's answer was read (sampled as 0)
	commandMs     []float64 // scheduled -> answered
	sendLateMs    []float64 // scheduled -> sent
	streamsFailed int
}

func (t *tracker) entry(task string) *pending {
	p := t.byTask[task]
	if p == nil {
		p = &pending{}
		t.byTask[task] = p
	}
	return p
}

func (t *tracker) settle(p *pending) {
	d := p.arrived.Sub(p.answered)
	if d < 0 {
		t.beforeAnswer++
		d = 0
	}
	t.latencies = append(t.latencies, loadkit.Millis(d))
}

func (t *tracker) answered(task string, scheduled, sent, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.commandMs = append(t.commandMs, loadkit.Millis(at.Sub(scheduled)))
	t.sendLateMs = append(t.sendLateMs, loadkit.Millis(sent.Sub(scheduled)))
	p := t.entry(task)
	p.answered = at
	if !p.arrived.IsZero() {
		t.settle(p)
	}
}

func (t *tracker) arrived(task string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.entry(task)
	if !p.arrived.IsZero() {
		return // a later state of the same task: only the first message counts
	}
	p.arrived = at
	if !p.answered.IsZero() {
		t.settle(p)
	}
}

// stream reads one user's SSE stream; ready is signalled once on `event: ready`.
func stream(client *http.Client, url, token string, ready chan<- bool, t *tracker) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			err = fmt.Errorf("GET /stream: %d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		}
		t.Add(err.Error())
		ready <- false
		return
	}
	defer resp.Body.Close()
	reader := bufio.NewReaderSize(resp.Body, 16<<10)
	event, data, signalled := "", "", false
	for {
		line, err := reader.ReadString('\n')
		if err != nil {
			if !signalled {
				ready <- false
			}
			t.mu.Lock()
			t.streamsFailed++
			t.mu.Unlock()
			return
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if event == "ready" && !signalled {
				signalled = true
				ready <- true
			} else if event == "task" {
				at := time.Now()
				var task struct {
					ID string `json:"id"`
				}
				if json.Unmarshal([]byte(data), &task) == nil {
					t.arrived(task.ID, at)
				}
			}
			event, data = "", ""
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			data += strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")
		}
	}
}

// command sends one POST /tasks and records its answer.
func command(poster loadkit.Poster, token string, i int, scheduled time.Time, t *tracker) {
	created, err := poster.Create(token, fmt.Sprintf("stream %d", i))
	if err != nil {
		t.Add(err.Error())
		return
	}
	t.answered(created.ID, scheduled, created.Sent, created.Answered)
}

func main() {
	target := loadkit.TargetFlags("file with one JWT per line (one stream and user each)")
	seconds := flag.Float64("seconds", 30, "seconds of load (each user: one command per second)")
	pause := flag.Float64("pause", 3, "seconds between all streams ready and the load")
	timeout := flag.Float64("timeout", 5, "seconds a message may take before its command is missed")
	opening := flag.Int("opening", 50, "streams being opened at once")
	rate := flag.Float64("rate", 0, "commands per second over the users (0: one per user per second)")
	flag.Parse()
	tokens, err := target.Tokens()
	if err != nil {
		fmt.Fprintln(os.Stderr, "streamgen: need -tokens FILE:", err)
		os.Exit(2)
	}
	t := &tracker{byTask: map[string]*pending{}}
	// Streams never end by themselves: no client timeout; one connection each.
	streams := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: len(tokens)}}
	commands := &http.Client{
		Transport: &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024},
		Timeout:   30 * time.Second,
	}
	started := time.Now()
	slots := make(chan struct{}, *opening)
	ready := make(chan bool)
	streamURL := target.QueryURL("/stream")
	for _, token := range tokens {
		go func() {
			slots <- struct{}{}
			stream(streams, streamURL, token, readyOnce(ready, slots), t)
		}()
	}
	open := 0
	for range tokens {
		if <-ready {
			open++
		}
	}
	_, lastErr := t.Snapshot()
	loadkit.Emit(map[string]any{"phase": "open", "streams": open, "wanted": len(tokens),
		"open_s": time.Since(started).Seconds(), "last_error": lastErr})
	time.Sleep(time.Duration(*pause * float64(time.Second)))

	if *rate <= 0 {
		*rate = float64(len(tokens))
	}
	poster := loadkit.Poster{Client: commands, URL: target.CommandURL("/tasks")}
	loadkit.OpenModel(*rate, *seconds, func(i int, scheduled time.Time) {
		command(poster, tokens[i%len(tokens)], i, scheduled, t)
	})
	// Give the last commands' messages their time, then count what never came.
	limit := time.Duration(*timeout * float64(time.Second))
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		t.mu.Lock()
		done := len(t.latencies) >= len(t.commandMs)
		t.mu.Unlock()
		if done {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var inTime []float64
	for _, ms := range t.latencies {
		if ms <= float64(limit.Milliseconds()) {
			inTime = append(inTime, ms)
		}
	}
	errors, lastErr := t.Snapshot()
	loadkit.Emit(map[string]any{"phase": "done", "users": len(tokens), "streams": open,
		"seconds": *seconds, "rate": *rate, "commands": len(t.commandMs), "samples": len(inTime),
		"missed": len(t.commandMs) - len(inTime), "before_answer": t.beforeAnswer,
		"errors": errors, "error_kinds": t.Kinds(), "last_error": lastErr, "streams_failed": t.streamsFailed,
		"latency_ms": loadkit.Percentiles(inTime), "command_ms": loadkit.Percentiles(t.commandMs),
		"send_late_ms": loadkit.Percentiles(t.sendLateMs)})
}

// readyOnce frees the opening slot with the stream's first verdict (ready or failed).
func readyOnce(ready chan<- bool, slots <-chan struct{}) chan<- bool {
	relay := make(chan bool, 1)
	go func() {
		ok := <-relay
		<-slots
		ready <- ok
	}()
	return relay
}
