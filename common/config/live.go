package config

import (
	"reflect"
	"strings"
	"sync/atomic"
)

// Live is the configuration a running daemon serves with. SIGHUP replaces
// it with a fresh Load of tern.toml (common/daemon); code that must see a
// change without a restart reads Load at the start of each session or
// delivery instead of keeping the *Config it was started with.
type Live struct {
	p atomic.Pointer[Config]
}

// NewLive holds c.
func NewLive(c *Config) *Live {
	l := &Live{}
	l.p.Store(c)
	return l
}

// Load is the configuration in force.
func (l *Live) Load() *Config { return l.p.Load() }

// RestartKeys are the keys every daemon reads only at start: the
// listeners are open and the privileges dropped by then, and the files,
// directories and databases named here are open. A change to one of them
// on SIGHUP is kept out of the running configuration and logged.
var RestartKeys = []string{
	"hostname", "domains", "users", "aliases", "maildir", "state_dir", "runtime_dir",
	"user", "group", "log.format", "tls", "dns", "login", "storage",
	"smtpd.mx", "smtpd.submission", "smtpd.submissions", "smtpd.local_submit", "smtpd.lmtp",
	"smtpd.metrics",
	"smtpd.submission_rate", "smtpd.max_deliveries", "smtpd.mta_sts", "smtpd.mta_sts_port", "smtpd.tls_ca_file", "smtpd.tls_reports",
	"smtpd.lmtp_idle_connections", "smtpd.lmtp_idle_timeout", "smtpd.connect_timeout",
	"dkim.max_verifications",
	"pop3d.listen", "pop3d.tls_listen", "pop3d.metrics",
	"lmtpd.listen", "lmtpd.metrics", "lmtpd.sieve", "lmtpd.sieve_max_size",
	"imapd.listen", "imapd.tls_listen", "imapd.metrics", "managesieve", "webd",
}

// Reload loads path with every rule of Load (the rules of -check). A file
// with problems is refused: err says why, file and line, and the
// configuration in force is kept. Otherwise the new configuration is put in
// force, except for the keys in restart (as "section.key"; a section names
// all its keys), which keep their values; kept lists those of them the file
// changed.
func (l *Live) Reload(path string, restart []string) (kept []string, err error) {
	next, err := Load(path)
	if err != nil {
		return nil, err
	}
	old := l.Load()
	for _, key := range restart {
		o, n := fieldByKey(reflect.ValueOf(old).Elem(), key), fieldByKey(reflect.ValueOf(next).Elem(), key)
		if !o.IsValid() || !n.IsValid() {
			continue
		}
		diffKeys(key, o, n, &kept)
		n.Set(o)
	}
	l.p.Store(next)
	return kept, nil
}

// fieldByKey is the field of the Config struct v named by a dotted TOML
// key, or the zero Value when there is none.
func fieldByKey(v reflect.Value, key string) reflect.Value {
	for _, name := range strings.Split(key, ".") {
		if v.Kind() != reflect.Struct {
			return reflect.Value{}
		}
		found := reflect.Value{}
		for i := 0; i < v.NumField(); i++ {
			if tomlName(v.Type().Field(i)) == name {
				found = v.Field(i)
				break
			}
		}
		if !found.IsValid() {
			return found
		}
		v = found
	}
	return v
}

func tomlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	return name
}

// diffKeys appends to out the leaf keys under key where o and n differ.
func diffKeys(key string, o, n reflect.Value, out *[]string) {
	if reflect.DeepEqual(o.Interface(), n.Interface()) {
		return
	}
	if o.Kind() != reflect.Struct {
		*out = append(*out, key)
		return
	}
	for i := 0; i < o.NumField(); i++ {
		name := tomlName(o.Type().Field(i))
		if name == "" || name == "-" {
			continue
		}
		diffKeys(key+"."+name, o.Field(i), n.Field(i), out)
	}
}
