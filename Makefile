# Build and install knock on a Debian-like system.
#
#   make                      # release build of both binaries
#   sudo make install         # binaries, systemd unit, man pages, completions, examples
#   sudo make install PREFIX=/usr/local DESTDIR=/tmp/stage
#   sudo make demo            # the quick start: a knock opens a door on a private test link
#
# Paths follow Debian's layout: binaries in $(PREFIX)/bin, the unit in /lib/systemd/system,
# completions where bash-completion, zsh and fish look for them.

PREFIX    ?= /usr/local
DESTDIR   ?=
CARGO     ?= cargo
BINDIR     = $(DESTDIR)$(PREFIX)/bin
MANDIR     = $(DESTDIR)$(PREFIX)/share/man
SHAREDIR   = $(DESTDIR)$(PREFIX)/share
UNITDIR    = $(DESTDIR)/lib/systemd/system
ETCDIR     = $(DESTDIR)/etc/knock

.PHONY: all install uninstall demo test

all:
	$(CARGO) build --release --locked -p knock-server -p knock-client

install: all
	install -Dm755 target/release/knock-server $(BINDIR)/knock-server
	install -Dm755 target/release/knock $(BINDIR)/knock
	install -Dm644 man/knock.1 $(MANDIR)/man1/knock.1
	install -Dm644 man/knock-server.8 $(MANDIR)/man8/knock-server.8
	install -Dm644 completions/knock.bash $(SHAREDIR)/bash-completion/completions/knock
	install -Dm644 completions/_knock $(SHAREDIR)/zsh/vendor-completions/_knock
	install -Dm644 completions/knock.fish $(SHAREDIR)/fish/vendor_completions.d/knock.fish
	install -Dm644 completions/_knock.ps1 $(SHAREDIR)/knock/completions/_knock.ps1
	install -Dm644 completions/knock.elv $(SHAREDIR)/knock/completions/knock.elv
	sed 's|/usr/bin/knock-server|$(PREFIX)/bin/knock-server|' dist/knock-server.service > knock-server.service.tmp
	install -Dm644 knock-server.service.tmp $(UNITDIR)/knock-server.service
	rm -f knock-server.service.tmp
	sed 's|/usr/bin/knock-server|$(PREFIX)/bin/knock-server|' 'dist/knock-server@.service' > knock-server@.service.tmp
	install -Dm644 knock-server@.service.tmp '$(UNITDIR)/knock-server@.service'
	rm -f knock-server@.service.tmp
	install -d $(ETCDIR)
	install -Dm644 examples/server.toml $(SHAREDIR)/doc/knock/examples/server.toml
	install -Dm644 examples/knockd.conf $(SHAREDIR)/doc/knock/examples/knockd.conf
	install -Dm644 examples/client.toml $(SHAREDIR)/doc/knock/examples/client.toml

uninstall:
	rm -f $(BINDIR)/knock-server $(BINDIR)/knock $(MANDIR)/man1/knock.1 $(MANDIR)/man8/knock-server.8
	rm -f $(SHAREDIR)/bash-completion/completions/knock $(SHAREDIR)/zsh/vendor-completions/_knock
	rm -f $(SHAREDIR)/fish/vendor_completions.d/knock.fish $(UNITDIR)/knock-server.service
	rm -f '$(UNITDIR)/knock-server@.service'
	rm -rf $(SHAREDIR)/knock $(SHAREDIR)/doc/knock

demo:
	scripts/demo

test:
	scripts/test
