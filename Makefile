# tern — build, run the demo, test, install.
# `make run` starts every daemon on loopback with etc/dev.toml;
# `make test` runs go vet and every test (unit and end-to-end); as root it
# first installs what the tests drive (test/deps). `make check` is gofmt,
# go vet and staticcheck.

GO       ?= go
PREFIX   ?= /usr/local
DESTDIR  ?=
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X tern/common/daemon.Version=$(VERSION)
DAEMONS  := smtpd lmtpd imapd pop3d webd
PROGRAMS := $(DAEMONS) mailq

LIBDIR   := $(PREFIX)/lib/tern
SBINDIR  := $(PREFIX)/sbin
MANDIR   := $(PREFIX)/share/man
UNITDIR  := $(PREFIX)/lib/systemd/system
ETCDIR   ?= /etc/tern

.PHONY: all build run test vet check install clean fmt

all: build

build:
	@mkdir -p bin
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/ $(addprefix ./,$(PROGRAMS))
	ln -sf mailq bin/sendmail

# The demo: every daemon in the foreground; Ctrl-C stops them all.
run: build
	@exec ./etc/run-dev etc/dev.toml

vet:
	$(GO) vet ./...

# As root (CI, a fresh machine) the Debian packages the end-to-end tests
# drive are installed first, so nothing is skipped for want of them; as
# another user the report ends with every skipped test and why.
# TERN_NO_INSTALL=1 skips the install step.
test: vet
	@if [ "$$(id -u)" = 0 ] && [ -z "$${TERN_NO_INSTALL:-}" ]; then test/deps install; fi
	GO=$(GO) $(GO) run ./test/cmd/testreport -race -count=1 -timeout 20m ./...

# gofmt, go vet and staticcheck (pinned in test/deps; `test/deps install`
# fetches it). CI runs it before the tests.
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo $$($(GO) env GOPATH)/bin/staticcheck)
check: vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@[ -x "$(STATICCHECK)" ] || { echo "staticcheck is missing: test/deps install"; exit 1; }
	$(STATICCHECK) ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

install: build
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(SBINDIR)
	install -m 0755 $(addprefix bin/,$(DAEMONS)) $(DESTDIR)$(LIBDIR)/
	install -m 0755 bin/mailq $(DESTDIR)$(SBINDIR)/mailq
	ln -sf mailq $(DESTDIR)$(SBINDIR)/sendmail
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(MANDIR)/man8
	for f in man/*.[1578]; do [ -e "$$f" ] || continue; \
		s=$${f##*.}; install -m 0644 $$f $(DESTDIR)$(MANDIR)/man$$s/; done
	if ls systemd/*.service >/dev/null 2>&1; then \
		install -d $(DESTDIR)$(UNITDIR); \
		install -m 0644 systemd/*.service systemd/*.socket $(DESTDIR)$(UNITDIR)/ 2>/dev/null || true; fi
	install -d $(DESTDIR)$(ETCDIR)
	# Never overwrite an admin's configuration.
	[ -e $(DESTDIR)$(ETCDIR)/tern.toml ] || install -m 0644 etc/tern.toml $(DESTDIR)$(ETCDIR)/tern.toml

clean:
	rm -rf bin var

# `make deb`: bin/tern_<version>_<arch>.deb from the binaries of `make build`
# (packaging/build-deb, dpkg-deb only; nothing is downloaded).
DEB_VERSION ?= $(VERSION)

.PHONY: deb
deb: build
	packaging/build-deb -v '$(DEB_VERSION)' -b bin -o bin

# `make bench` / `make bench-quick`: tern side by side with private Postfix
# and Dovecot instances on loopback (bench/README.md). Needs root; installs
# postfix and dovecot-{imapd,pop3d,lmtpd} when missing. Not part of `make test`.
# BENCHFLAGS passes options to ternbench, e.g. BENCHFLAGS=-profile.
BENCHFLAGS ?=

.PHONY: bench bench-quick bench-bin
bench-bin:
	@mkdir -p bin
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/ $(addprefix ./,$(DAEMONS))
	$(GO) build -o bin/ternbench ./bench/cmd/ternbench

bench: bench-bin
	bin/ternbench -set full -bin bin -results bench/results $(BENCHFLAGS)

bench-quick: bench-bin
	bin/ternbench -set quick -bin bin -results bench/results $(BENCHFLAGS)

# `make fuzz`: every fuzz target (func FuzzXxx in a *_test.go file) for
# FUZZTIME each, one after another; the seed corpora are in each package's
# testdata/fuzz. A failing input is written there too. Not part of `make test`
# (which runs the seeds and the committed corpora as ordinary tests).
FUZZTIME ?= 30s

.PHONY: fuzz
fuzz:
	@failed=""; for f in $$(grep -rl --include='*_test.go' '^func Fuzz' common smtpd lmtpd imapd pop3d mailq | sort); do \
		d=./$$(dirname $$f); \
		for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "== $$d $$t"; \
			$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $$d || failed="$$failed $$d:$$t"; \
		done; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: failing targets:$$failed"; exit 1; fi
