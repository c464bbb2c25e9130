// composecheck loads a compose file with compose-go, the loader Docker Compose itself uses, and
// prints the resolved project as JSON; it exits 1 with the loader's error if the file is invalid.
// Docker cannot run on the project's build machines, so this is how the suite proves that
// docker-compose.yml is a file `docker compose` would accept (tests/unit/test_compose_go.py).
//
//	composecheck [-env-file FILE] COMPOSE_FILE
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	envFile := flag.String("env-file", "", "an env file to read, as `docker compose --env-file`")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: composecheck [-env-file FILE] COMPOSE_FILE")
		os.Exit(2)
	}
	if err := check(flag.Arg(0), *envFile); err != nil {
		fmt.Fprintln(os.Stderr, "composecheck:", err)
		os.Exit(1)
	}
}

func check(file, envFile string) error {
	abs, err := filepath.Abs(file)
	if err != nil {
		return err
	}
	optionFns := []cli.ProjectOptionsFn{
		cli.WithWorkingDirectory(filepath.Dir(abs)),
		cli.WithOsEnv,
		cli.WithName("todo-platform"),
	}
	if envFile != "" {
		optionFns = append(optionFns, cli.WithEnvFiles(envFile))
	}
	// As `docker compose config`: .env (when present) fills in what the environment does not.
	optionFns = append(optionFns, cli.WithDotEnv)
	options, err := cli.NewProjectOptions([]string{abs}, optionFns...)
	if err != nil {
		return err
	}
	project, err := cli.ProjectFromOptions(context.Background(), options)
	if err != nil {
		return err
	}
	out, err := json.MarshalIndent(project, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Println(string(out))
	return err
}
