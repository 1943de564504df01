# Build and install knock on a Debian-like system.
#
#   make                      # release build of both binaries
#   sudo make install         # binaries, systemd units, man pages, completions, examples
#   sudo make install PREFIX=/usr/local DESTDIR=/tmp/stage
#   make deb                  # knock_VERSION_ARCH.deb (dist/debian/, dpkg-deb)
#   sudo make demo            # the quick start: a knock opens a door on a private test link
#
# Paths follow Debian's layout: binaries in $(PREFIX)/bin, units in /lib/systemd/system, and
# completions (knock's and knock-server's) where each shell looks by default, ahead of zsh's
# own _knock (written for knockd's client, in /usr/share/zsh/functions/Completion/Unix):
#   PREFIX=/usr      zsh: /usr/share/zsh/vendor-completions  fish: /usr/share/fish/vendor_completions.d
#   any other PREFIX zsh: $(PREFIX)/share/zsh/site-functions  fish: /etc/fish/completions
# Debian's zsh searches /usr/local/share/zsh/site-functions first and /usr/share/zsh/vendor-completions
# before its own functions (`zsh -fc 'print -l $$fpath'`); fish searches /etc/fish/completions and
# /usr/share/fish/vendor_completions.d, but /usr/local/share/fish only when XDG_DATA_DIRS names
# it (`fish -c 'echo $$fish_complete_path'`). bash-completion searches $(PREFIX)/share for
# /usr/local and /usr. Override BASHCOMPDIR, ZSHCOMPDIR or FISHCOMPDIR to choose.

PREFIX    ?= /usr/local
DESTDIR   ?=
CARGO     ?= cargo
BINDIR     = $(DESTDIR)$(PREFIX)/bin
MANDIR     = $(DESTDIR)$(PREFIX)/share/man
SHAREDIR   = $(DESTDIR)$(PREFIX)/share
UNITDIR    = $(DESTDIR)/lib/systemd/system
ETCDIR     = $(DESTDIR)/etc/knock

BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ifeq ($(PREFIX),/usr)
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/vendor-completions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
else
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= /etc/fish/completions
endif
# Units shipped in dist/ (knock-server.service, and knock-server@.service when present).
UNITS      = $(wildcard dist/knock-server*.service)

# `make CLIENT_TARGET=x86_64-unknown-linux-musl` (after `rustup target add` of it) builds and
# installs the client linked statically against musl: with no dynamic loader and a lighter
# libc start-up, a knock costs less CPU than Debian's C client (BENCHMARKS.md, "One knock").
CLIENT_TARGET ?=
CLIENT_BIN     = target/$(if $(CLIENT_TARGET),$(CLIENT_TARGET)/)release/knock

.PHONY: all install install-files uninstall deb demo test

all:
	$(CARGO) build --release --locked -p knock-server -p knock-client
	$(if $(CLIENT_TARGET),$(CARGO) build --release --locked -p knock-client --target $(CLIENT_TARGET))

install: all install-files

# Installs what `all` built, without building (the package build stages with it).
install-files:
	install -Dm755 target/release/knock-server $(BINDIR)/knock-server
	install -Dm755 $(CLIENT_BIN) $(BINDIR)/knock
	install -Dm644 man/knock.1 $(MANDIR)/man1/knock.1
	install -Dm644 man/knock-server.8 $(MANDIR)/man8/knock-server.8
	install -Dm644 completions/knock.bash $(DESTDIR)$(BASHCOMPDIR)/knock
	install -Dm644 completions/_knock $(DESTDIR)$(ZSHCOMPDIR)/_knock
	install -Dm644 completions/knock.fish $(DESTDIR)$(FISHCOMPDIR)/knock.fish
	install -Dm644 completions/knock-server.bash $(DESTDIR)$(BASHCOMPDIR)/knock-server
	install -Dm644 completions/_knock-server $(DESTDIR)$(ZSHCOMPDIR)/_knock-server
	install -Dm644 completions/knock-server.fish $(DESTDIR)$(FISHCOMPDIR)/knock-server.fish
	install -Dm644 completions/_knock.ps1 $(SHAREDIR)/knock/completions/_knock.ps1
	install -Dm644 completions/knock.elv $(SHAREDIR)/knock/completions/knock.elv
	install -d $(UNITDIR)
	for u in $(UNITS); do \
	  sed 's|/usr/bin/knock-server|$(PREFIX)/bin/knock-server|' $$u > $(UNITDIR)/$${u##*/} && \
	  chmod 644 $(UNITDIR)/$${u##*/} || exit 1; \
	done
	install -d $(ETCDIR)
	install -Dm644 examples/server.toml $(SHAREDIR)/doc/knock/examples/server.toml
	install -Dm644 examples/knockd.conf $(SHAREDIR)/doc/knock/examples/knockd.conf
	install -Dm644 examples/client.toml $(SHAREDIR)/doc/knock/examples/client.toml
	install -Dm644 examples/one-time-sequences $(SHAREDIR)/doc/knock/examples/one-time-sequences

uninstall:
	rm -f $(BINDIR)/knock-server $(BINDIR)/knock $(MANDIR)/man1/knock.1 $(MANDIR)/man8/knock-server.8
	rm -f $(DESTDIR)$(BASHCOMPDIR)/knock $(DESTDIR)$(ZSHCOMPDIR)/_knock $(DESTDIR)$(FISHCOMPDIR)/knock.fish
	rm -f $(DESTDIR)$(BASHCOMPDIR)/knock-server $(DESTDIR)$(ZSHCOMPDIR)/_knock-server \
	  $(DESTDIR)$(FISHCOMPDIR)/knock-server.fish
	for u in $(UNITS); do rm -f $(UNITDIR)/$${u##*/}; done
	rm -rf $(SHAREDIR)/knock $(SHAREDIR)/doc/knock

deb:
	dist/debian/build-deb

demo:
	scripts/demo

test:
	scripts/test
