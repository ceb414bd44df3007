package main

// Exit codes of sysexits(3), which callers of sendmail (cron, mail(1),
// PHP's mail()) understand: 75 tells them to try again later.
const (
	exOK          = 0
	exUsage       = 64 // a bad command line
	exDataErr     = 65 // the message itself cannot be sent
	exNoUser      = 67 // a recipient does not exist
	exUnavailable = 69 // a service or feature is not available
	exSoftware    = 70 // an internal error
	exIOErr       = 74 // reading the input failed
	exTempFail    = 75 // try again later: nothing was queued
	exNoPerm      = 77 // not allowed
	exConfig      = 78 // the configuration is broken
)
