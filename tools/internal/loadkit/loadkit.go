// Package loadkit holds what the benchmarks' load generators (tools/loadgen, tools/streamgen)
// share: the file of user tokens, the open-model schedule, creating a task as a user, counting
// failures, and the latency percentiles they report. Standard library only.
package loadkit

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// ReadTokens reads one JWT per line (one per user); blank lines are skipped.
func ReadTokens(path string) ([]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var tokens []string
	for _, line := range strings.Split(string(raw), "\n") {
		if t := strings.TrimSpace(line); t != "" {
			tokens = append(tokens, t)
		}
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("%s holds no token", path)
	}
	return tokens, nil
}

// OpenModel starts rate*seconds calls at fixed intervals from now, each in its own goroutine, and
// waits for all of them. An OPEN model: a call starts at its time whatever the latency of the
// earlier ones, so a slow system cannot slow the load down and hide its own tail.
func OpenModel(rate, seconds float64, call func(i int, scheduled time.Time)) {
	var wg sync.WaitGroup
	n := int(rate * seconds)
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for i := 0; i < n; i++ {
		scheduled := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(scheduled))
		wg.Add(1)
		go func() {
			defer wg.Done()
			call(i, scheduled)
		}()
	}
	wg.Wait()
}

// Created is the command API's answer to one POST /tasks.
type Created struct {
	ID       string
	Position string // X-Event-Position: what a read-your-writes read waits for
	Sent     time.Time
	Answered time.Time // when the answer's body had been read
}

// Poster creates tasks through the command API.
type Poster struct {
	Client *http.Client
	URL    string // the command API's /tasks
	// NeedPosition makes an answer without X-Event-Position a failure (for callers that read with it).
	NeedPosition bool
}

// Create sends POST /tasks {"title": title} as the token's user.
func (p Poster) Create(token, title string) (Created, error) {
	body, _ := json.Marshal(map[string]string{"title": title})
	req, _ := http.NewRequest(http.MethodPost, p.URL, strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	sent := time.Now()
	resp, err := p.Client.Do(req)
	if err != nil {
		return Created{}, err
	}
	payload, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	c := Created{Position: resp.Header.Get("X-Event-Position"), Sent: sent, Answered: time.Now()}
	var created struct {
		ID string `json:"id"`
	}
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(payload, &created) != nil ||
		(p.NeedPosition && c.Position == "") {
		return Created{}, fmt.Errorf("POST /tasks: %d %s", resp.StatusCode, strings.TrimSpace(string(payload)))
	}
	c.ID = created.ID
	return c, nil
}

// Failures counts failed requests and keeps the last one's message; safe for concurrent use.
type Failures struct {
	mu    sync.Mutex
	count int
	last  string
}

func (f *Failures) Add(err string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count++
	f.last = err
}

// Snapshot returns how many failed so far and the last message ("" when none).
func (f *Failures) Snapshot() (int, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count, f.last
}

// Millis is a duration in milliseconds, to the microsecond.
func Millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Percentiles sorts ds and returns its p50, p99 and max, by nearest rank (the smallest value with
// at least p of the samples at or below it); all 0 for no samples.
func Percentiles(ds []float64) map[string]float64 {
	sort.Float64s(ds)
	at := func(p float64) float64 {
		if len(ds) == 0 {
			return 0
		}
		rank := int(p*float64(len(ds))+0.999999) - 1
		return ds[max(0, min(rank, len(ds)-1))]
	}
	return map[string]float64{"p50": at(0.50), "p99": at(0.99), "max": at(1)}
}

// Emit prints v as one JSON line on stdout (what the benchmark scripts parse).
func Emit(v map[string]any) {
	out, _ := json.Marshal(v)
	fmt.Println(string(out))
}
