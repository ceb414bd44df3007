package main

import "os/exec"

var execCommand = exec.Command

// lookPath finds the first of names on PATH.
func lookPath(names ...string) (string, error) {
	var err error
	for _, n := range names {
		var p string
		if p, err = exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", err
}
