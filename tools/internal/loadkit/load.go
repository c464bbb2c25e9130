package loadkit

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

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
