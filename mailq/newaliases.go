package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"tern/common/config"
	"tern/common/daemon"
	"tern/common/recipient"
)

// newaliasesMain checks the aliases file, with the files it includes, and
// reports every problem with its file and line. tern reads the text file
// itself and reloads it when it changes, so there is no database to build.
func newaliasesMain(args []string, stdout, stderr io.Writer) int {
	cfgPath := daemon.DefaultConfig
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-config" && i+1 < len(args):
			cfgPath = args[i+1]
			i++
		case strings.HasPrefix(a, "-config="):
			cfgPath = strings.TrimPrefix(a, "-config=")
		default:
			// Sendmail's and Postfix's newaliases options (-oA…, -v) ask for
			// things a text file does not need.
		}
	}
	return checkAliases(cfgPath, stdout, stderr)
}

func checkAliases(cfgPath string, stdout, stderr io.Writer) int {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "newaliases: %v\n", err)
		return exConfig
	}
	err = recipient.CheckFile(cfg.Aliases)
	var pe *recipient.ParseError
	switch {
	case err == nil:
		fmt.Fprintf(stdout, "newaliases: %s is valid; tern reads it directly and reloads it when it changes, no database build is needed\n", cfg.Aliases)
		return exOK
	case errors.Is(err, fs.ErrNotExist):
		fmt.Fprintf(stdout, "newaliases: no aliases file at %s (none is needed); tern needs no database build\n", cfg.Aliases)
		return exOK
	case errors.As(err, &pe):
		for _, p := range pe.Problems {
			fmt.Fprintf(stderr, "newaliases: %s\n", p)
		}
		fmt.Fprintf(stderr, "newaliases: %d %s in %s; running daemons keep the previous version until it is fixed\n",
			len(pe.Problems), plural(len(pe.Problems), "problem", "problems"), cfg.Aliases)
		return exDataErr
	}
	fmt.Fprintf(stderr, "newaliases: %v\n", err)
	return exIOErr
}
