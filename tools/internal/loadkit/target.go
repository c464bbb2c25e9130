package loadkit

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// Target is what every generator is pointed at: the two APIs and the users' tokens, from the
// -command, -query and -tokens flags.
type Target struct {
	command, query, tokens *string
}

// TargetFlags registers -command, -query and -tokens on the default flag set (before flag.Parse).
func TargetFlags(tokensHelp string) Target {
	return Target{
		command: flag.String("command", "http://127.0.0.1:8001", "command API base URL"),
		query:   flag.String("query", "http://127.0.0.1:8002", "query API base URL"),
		tokens:  flag.String("tokens", "", tokensHelp),
	}
}

// CommandURL is the command API's URL of path ("/tasks").
func (t Target) CommandURL(path string) string { return strings.TrimRight(*t.command, "/") + path }

// QueryURL is the query API's URL of path ("/stream").
func (t Target) QueryURL(path string) string { return strings.TrimRight(*t.query, "/") + path }

// Tokens reads the -tokens file.
func (t Target) Tokens() ([]string, error) { return ReadTokens(*t.tokens) }

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
