# jpki: a JPKI (My Number Card) login gate for nginx and Apache httpd.
#   make          build build/libjpki.a, build/jpkictl (and the modules)
#   make test     install missing Debian packages, build, run every test
#   make demo     install missing Debian packages, run the demo
#   make bench    print the performance figures
SHELL   := /bin/bash
CC      ?= cc
B       := build
CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wno-unused-parameter -Werror=implicit-function-declaration \
           -Werror=format-security
CPPFLAGS_ALL := -Icommon -D_GNU_SOURCE -DOPENSSL_API_COMPAT=30000 \
           -DOPENSSL_NO_DEPRECATED $(CPPFLAGS)
LIBS    := -lhiredis -lqrencode -lssl -lcrypto -lpthread
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer \
           -fno-sanitize-recover=undefined

CORE_SRC := $(sort $(wildcard common/*.c))
CORE_HDR := $(wildcard common/*.h)
# the login page's assets (common/assets/) are in the core too: a C file
# made from them at build time (tools/embed_assets.pl: bytes, types, ETags)
ASSETS   := $(sort $(wildcard common/assets/*.css common/assets/*.js))
GEN_SRC  := $(B)/gen/page_assets.c
CORE_OBJ := $(CORE_SRC:common/%.c=$(B)/obj/%.o) $(B)/obj/page_assets.o
SAN_OBJ  := $(CORE_SRC:common/%.c=$(B)/asan/obj/%.o) $(B)/asan/obj/page_assets.o
UNIT_SRC := $(sort $(wildcard t/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:t/unit/%.c=$(B)/t/%)
UNIT_SAN := $(UNIT_SRC:t/unit/%.c=$(B)/asan/t/%)

.PHONY: all deps test unit sanitized fuzz fuzz-build demo bench pki pki-age clean install
all: $(B)/libjpki.a $(B)/jpkictl $(B)/jpki-login $(B)/ngx_http_jpki_module.so $(B)/mod_auth_jpki.so

deps:
	@bash .ci/deps

$(GEN_SRC): $(ASSETS) tools/embed_assets.pl
	@mkdir -p $(@D)
	@echo '  GEN   $@'; perl tools/embed_assets.pl $@ $(ASSETS)

$(B)/obj/%.o: common/%.c $(CORE_HDR)
	@mkdir -p $(@D)
	@echo '  CC    $@'; $(CC) $(CFLAGS) $(WARN) -fPIC $(CPPFLAGS_ALL) -c $< -o $@
$(B)/obj/page_assets.o: $(GEN_SRC) common/page_assets.h
	@mkdir -p $(@D)
	@echo '  CC    $@'; $(CC) $(CFLAGS) $(WARN) -fPIC $(CPPFLAGS_ALL) -c $< -o $@
$(B)/libjpki.a: $(CORE_OBJ)
	@echo '  AR    $@'; rm -f $@; ar rcs $@ $^

$(B)/asan/obj/%.o: common/%.c $(CORE_HDR)
	@mkdir -p $(@D)
	@echo '  CC    $@'; $(CC) -O1 -g -fPIC $(SAN) $(WARN) $(CPPFLAGS_ALL) -c $< -o $@
$(B)/asan/obj/page_assets.o: $(GEN_SRC) common/page_assets.h
	@mkdir -p $(@D)
	@echo '  CC    $@'; $(CC) -O1 -g -fPIC $(SAN) $(WARN) $(CPPFLAGS_ALL) -c $< -o $@
$(B)/asan/libjpki.a: $(SAN_OBJ)
	@echo '  AR    $@'; rm -f $@; ar rcs $@ $^

# jpkictl: the dispatch (jpkictl.c), then one file per command family
JPKICTL_SRC := tools/jpkictl.c tools/cert_cmds.c tools/map_cmds.c \
               tools/map_bulk.c \
               tools/redis_conn.c tools/redis_tls.c tools/crl_sync.c tools/crl_gen.c \
               tools/crl_check.c tools/crl_store.c tools/crl_fetch.c \
               tools/crl_state.c tools/sink.c tools/opts.c tools/audit_cmds.c
JPKICTL_DEP := $(JPKICTL_SRC) tools/jpkictl.h tools/crl_store.h \
               tools/crl_state.h tools/sink.h tools/opts.h $(CORE_HDR)
$(B)/jpkictl: $(JPKICTL_DEP) $(B)/libjpki.a
	@echo '  LD    $@'; $(CC) $(CFLAGS) $(WARN) $(CPPFLAGS_ALL) $(JPKICTL_SRC) -o $@ $(B)/libjpki.a $(LIBS) -ldl
$(B)/asan/jpkictl: $(JPKICTL_DEP) $(B)/asan/libjpki.a
	@echo '  LD    $@'; $(CC) -O1 -g $(SAN) $(WARN) $(CPPFLAGS_ALL) $(JPKICTL_SRC) -o $@ $(B)/asan/libjpki.a $(LIBS) -ldl

# jpki-login: the client that signs in with a card (PKCS#11 module loaded
# with dlopen; types from p11-kit's header): login_main.c (options, the
# run), login_http.c (the gate), login_card.c (the token), login_device.c
# (--device: a login page's link).  Linked with libjpki for the rules it
# shares with the gate (the challenge's layout and host, the device code,
# base64, the JSON answers).
LOGIN_SRC := tools/login_main.c tools/login_http.c tools/login_card.c \
             tools/login_device.c tools/p11.c tools/sink.c tools/opts.c
LOGIN_DEP := $(LOGIN_SRC) tools/login.h tools/p11.h tools/sink.h tools/opts.h \
             $(CORE_HDR)
P11_CFLAGS := $(shell pkg-config --cflags p11-kit-1 2>/dev/null || echo -I/usr/include/p11-kit-1)
$(B)/jpki-login: $(LOGIN_DEP) $(B)/libjpki.a
	@mkdir -p $(@D)
	@echo '  LD    $@'; $(CC) $(CFLAGS) $(WARN) $(CPPFLAGS_ALL) $(P11_CFLAGS) $(LOGIN_SRC) -o $@ $(B)/libjpki.a -lcurl $(LIBS) -ldl
$(B)/asan/jpki-login: $(LOGIN_DEP) $(B)/asan/libjpki.a
	@mkdir -p $(@D)
	@echo '  LD    $@'; $(CC) -O1 -g $(SAN) $(WARN) $(CPPFLAGS_ALL) $(P11_CFLAGS) $(LOGIN_SRC) -o $@ $(B)/asan/libjpki.a -lcurl $(LIBS) -ldl

$(B)/t/%: t/unit/%.c t/unit/tap.h t/unit/pki.h t/unit/peer.h $(B)/libjpki.a
	@mkdir -p $(@D)
	@echo '  LD    $@'; $(CC) $(CFLAGS) $(WARN) $(CPPFLAGS_ALL) $< -o $@ $(B)/libjpki.a $(LIBS)
$(B)/asan/t/%: t/unit/%.c t/unit/tap.h t/unit/pki.h t/unit/peer.h $(B)/asan/libjpki.a
	@mkdir -p $(@D)
	@echo '  LD    $@'; $(CC) -O1 -g $(SAN) $(WARN) $(CPPFLAGS_ALL) $< -o $@ \
	    $(B)/asan/libjpki.a $(LIBS)

# The test PKI (t/pki/mkpki.sh) is rebuilt when the script changes, and when
# it is older than 12 hours (its CRLs are valid for one day).
pki: pki-age $(B)/pki/.done
pki-age:
	@find $(B)/pki/.done -mmin +720 -delete 2>/dev/null || true
$(B)/pki/.done: t/pki/mkpki.sh
	rm -rf $(B)/pki
	bash t/pki/mkpki.sh $(B)/pki
	touch $@

unit: $(UNIT_BIN) $(UNIT_SAN) pki

# The tests run twice: as released, then with the modules and jpkictl
# built with AddressSanitizer and UBSan (t/sanitize/: nginx and Apache
# started with the sanitizer runtimes preloaded; a report in a log fails
# the test that made it; jpkictl also checks for leaks).  The second run
# leaves out the test that measures time (nginx-nonblocking), the demo and
# the installed modules (debian-layout).
# the sanitized pass leaves out the Chromium tests (minutes each; what they
# drive on the server, the page, the device flow and TLS logins, runs
# sanitized in t/login-page.t, t/login-device.t and t/tls-login.t)
SAN_T := $(filter-out t/nginx-nonblocking.t t/demo.t t/debian-layout.t \
                      t/browser.t t/browser-page.t,$(wildcard t/*.t))
test: deps
	$(MAKE) all unit sanitized fuzz-build $(B)/crlgen $(B)/sign_bodies
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	JPKI_TEST_PKI=$(CURDIR)/$(B)/pki JPKI_BUILD=$(CURDIR)/$(B) \
	    prove -j2 $(UNIT_BIN) $(UNIT_SAN) $(wildcard t/*.t)
	@echo '  the tests again, modules and jpkictl under ASan and UBSan'
	JPKI_TEST_PKI=$(CURDIR)/$(B)/pki JPKI_BUILD=$(CURDIR)/$(B) \
	JPKI_NGINX=$(CURDIR)/t/sanitize/nginx JPKI_APACHE=$(CURDIR)/t/sanitize/apache2 \
	JPKI_NGINX_MODULE=$(CURDIR)/$(B)/asan/ngx_http_jpki_module.so \
	JPKI_APACHE_MODULE=$(CURDIR)/$(B)/asan/mod_auth_jpki.so \
	JPKI_JPKICTL=$(CURDIR)/$(B)/asan/jpkictl \
	JPKI_LOGIN=$(CURDIR)/$(B)/asan/jpki-login \
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    prove -j2 $(SAN_T)
	@echo '  the fuzz targets, 5 s each'
	@bash t/fuzz/run.sh $(B) 5

# ---- fuzzing (libFuzzer, clang): the parsers that read what others send
# (t/fuzz/).  `make fuzz` runs each target FUZZ_SECONDS (default 60) from
# seeds made of the test PKI; `make test` runs them 5 s each.  A crash
# leaves its input in build/fuzz/ (crash-*).
FUZZ_CC    ?= clang
FUZZ_SAN   := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_OBJ   := $(CORE_SRC:common/%.c=$(B)/fuzz/obj/%.o) $(B)/fuzz/obj/page_assets.o
FUZZ_BIN   := $(B)/fuzz/fuzz_login $(B)/fuzz/fuzz_parsers
FUZZ_SECONDS ?= 60
$(B)/fuzz/obj/%.o: common/%.c $(CORE_HDR)
	@mkdir -p $(@D)
	@echo '  CC    $@'; $(FUZZ_CC) -g -O1 -fsanitize=fuzzer-no-link $(FUZZ_SAN) \
	    -Wall -Wno-unused-parameter $(CPPFLAGS_ALL) -c $< -o $@
$(B)/fuzz/obj/page_assets.o: $(GEN_SRC) common/page_assets.h
	@mkdir -p $(@D)
	@echo '  CC    $@'; $(FUZZ_CC) -g -O1 -fsanitize=fuzzer-no-link $(FUZZ_SAN) \
	    -Wall -Wno-unused-parameter $(CPPFLAGS_ALL) -c $< -o $@
$(B)/fuzz/%: t/fuzz/%.c t/fuzz/fuzz_common.h t/unit/tap.h t/unit/pki.h $(FUZZ_OBJ)
	@echo '  LD    $@'; $(FUZZ_CC) -g -O1 -fsanitize=fuzzer $(FUZZ_SAN) \
	    -Wall -Wno-unused-parameter -Wno-unused-function $(CPPFLAGS_ALL) $< \
	    $(FUZZ_OBJ) -o $@ $(LIBS)
.SECONDARY: $(FUZZ_OBJ)
fuzz-build: $(FUZZ_BIN) pki
fuzz: deps
	$(MAKE) fuzz-build
	@bash t/fuzz/run.sh $(B) $(FUZZ_SECONDS)

# make demo [SERVER=apache]: the demo on nginx (default) or Apache httpd
SERVER ?= nginx
demo:
	@bash .ci/deps demo
	$(MAKE) all pki
	SERVER=$(SERVER) bash tools/demo.sh

# ---- make install [PREFIX=/usr/local] [DESTDIR=]: the tools under PREFIX,
# the modules where Debian's nginx and apache2 look for them, with the
# snippets that load them (enable them with
#   ln -s /usr/share/nginx/modules-available/mod-http-jpki.conf \
#         /etc/nginx/modules-enabled/50-mod-http-jpki.conf
# and `a2enmod auth_jpki`), and the example snippets for Debian's layout
# (conf.d, sites-available, conf-available) in the documentation; the
# desktop entry that makes jpki-login the handler of jpki: links (a login
# page's device flow: jpki-login --device).
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
DOCDIR     ?= $(PREFIX)/share/doc/jpki-gate
NGX_MODDIR ?= /usr/lib/nginx/modules
NGX_AVAIL  ?= /usr/share/nginx/modules-available
AP_MODDIR  ?= /usr/lib/apache2/modules
AP_CONFDIR ?= /etc/apache2
APPDIR     ?= $(PREFIX)/share/applications
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(NGX_MODDIR) $(DESTDIR)$(NGX_AVAIL) \
	    $(DESTDIR)$(AP_MODDIR) $(DESTDIR)$(AP_CONFDIR)/mods-available \
	    $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(APPDIR)
	install -m 0755 $(B)/jpkictl $(B)/jpki-login $(DESTDIR)$(BINDIR)/
	install -m 0644 tools/jpki-login.desktop $(DESTDIR)$(APPDIR)/
	install -m 0644 $(B)/ngx_http_jpki_module.so $(DESTDIR)$(NGX_MODDIR)/
	install -m 0644 conf.example/nginx/modules-available/mod-http-jpki.conf \
	    $(DESTDIR)$(NGX_AVAIL)/
	install -m 0644 $(B)/mod_auth_jpki.so $(DESTDIR)$(AP_MODDIR)/
	sed 's|/usr/lib/apache2/modules|$(AP_MODDIR)|' \
	    conf.example/apache2/mods-available/auth_jpki.load \
	    > $(DESTDIR)$(AP_CONFDIR)/mods-available/auth_jpki.load
	chmod 0644 $(DESTDIR)$(AP_CONFDIR)/mods-available/auth_jpki.load
	cp -R conf.example/. $(DESTDIR)$(DOCDIR)/examples/
	sed -i 's|/usr/local/bin/jpkictl|$(BINDIR)/jpkictl|' \
	    $(DESTDIR)$(DOCDIR)/examples/systemd/jpki-crl-sync.service \
	    $(DESTDIR)$(DOCDIR)/examples/systemd/jpki-crl-sync.cron
	install -m 0644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/

bench:
	@bash .ci/deps bench
	$(MAKE) all pki $(B)/bench_core $(B)/sign_bodies $(B)/crlgen $(B)/store_fill
	bash bench/run.sh

$(B)/sign_bodies: bench/sign_bodies.c $(B)/libjpki.a
	@echo '  LD    $@'; $(CC) -O2 -g $(WARN) $(CPPFLAGS_ALL) $< -o $@ $(B)/libjpki.a $(LIBS)

$(B)/bench_core: bench/bench_core.c $(B)/libjpki.a
	@echo '  LD    $@'; $(CC) -O2 -g $(WARN) $(CPPFLAGS_ALL) $< -o $@ $(B)/libjpki.a $(LIBS)

$(B)/store_fill: bench/store_fill.c $(B)/libjpki.a
	@echo '  LD    $@'; $(CC) -O2 -g $(WARN) $(CPPFLAGS_ALL) $< -o $@ $(B)/libjpki.a $(LIBS)

clean:
	rm -rf $(B)

# ---- nginx dynamic module, built against Debian's nginx-dev -------------
NGX_SRC := /usr/share/nginx/src
NGX_MOD := $(wildcard ngx_module/*.c ngx_module/*.h)
# nginx's configure lists the module's files: it is run again when a file is
# added or removed (build/ngx_files changes only then).
NGX_FILES := $(B)/ngx_files
$(shell mkdir -p $(B); echo $(sort $(NGX_MOD)) | cmp -s - $(NGX_FILES) || echo $(sort $(NGX_MOD)) > $(NGX_FILES))
$(B)/nginx/objs/Makefile: config $(NGX_FILES)
	@rm -rf $(B)/nginx && mkdir -p $(B) && cp -r $(NGX_SRC) $(B)/nginx
	@echo '  NGX   configure (Debian flags, --with-compat)'
	@cd $(B)/nginx && . ./conf_flags && JPKI_BUILD=$(CURDIR)/$(B) \
	    ./configure "$${NGX_CONF_FLAGS[@]}" \
	    --with-cc-opt='-g -O2 -fPIC -Wall -Werror' \
	    --add-dynamic-module=$(CURDIR) > configure.log 2>&1 \
	    || (tail -20 configure.log; exit 1)
$(B)/ngx_http_jpki_module.so: $(B)/libjpki.a $(NGX_MOD) $(B)/nginx/objs/Makefile
	@echo '  NGX   $@'
	@touch ngx_module/ngx_http_jpki_module.c
	@$(MAKE) -s -C $(B)/nginx -f objs/Makefile modules > /dev/null
	@cp $(B)/nginx/objs/ngx_http_jpki_module.so $@.tmp && mv -f $@.tmp $@

# The same module with AddressSanitizer and UBSan (for `make test`); the
# core's objects are build/asan's.  Only the module's own objects are
# rebuilt when its sources change: the .so is relinked every time, for a
# changed libjpki.a.
$(B)/asan/nginx/objs/Makefile: config $(NGX_FILES)
	@rm -rf $(B)/asan/nginx && mkdir -p $(B)/asan && cp -r $(NGX_SRC) $(B)/asan/nginx
	@echo '  NGX   configure (ASan, UBSan)'
	@cd $(B)/asan/nginx && . ./conf_flags && JPKI_BUILD=$(CURDIR)/$(B)/asan \
	    ./configure "$${NGX_CONF_FLAGS[@]}" \
	    --with-cc-opt='-g -O1 -fPIC -Wall -Werror $(SAN)' --with-ld-opt='$(SAN)' \
	    --add-dynamic-module=$(CURDIR) > configure.log 2>&1 \
	    || (tail -20 configure.log; exit 1)
$(B)/asan/ngx_http_jpki_module.so: $(B)/asan/libjpki.a $(NGX_MOD) $(B)/asan/nginx/objs/Makefile
	@echo '  NGX   $@'
	@rm -f $(B)/asan/nginx/objs/ngx_http_jpki_module.so
	@$(MAKE) -s -C $(B)/asan/nginx -f objs/Makefile modules > /dev/null
	@cp $(B)/asan/nginx/objs/ngx_http_jpki_module.so $@.tmp && mv -f $@.tmp $@

# ---- Apache httpd module (mod_auth_jpki), built with apxs (apache2-dev) --
# apxs/libtool objects go to build/apache/, not next to the sources; the
# core is linked in statically (its objects are -fPIC).
APXS    ?= apxs
AP_SRC  := $(wildcard apache_module/*.c)
AP_HDR  := $(wildcard apache_module/*.h)
$(B)/mod_auth_jpki.so: $(AP_SRC) $(AP_HDR) $(B)/libjpki.a common/jpki.h
	@echo '  APXS  $@'
	@rm -rf $(B)/apache && mkdir -p $(B)/apache
	@cp $(AP_SRC) $(AP_HDR) $(B)/apache/
	@cd $(B)/apache && $(APXS) -c -o mod_auth_jpki.la -I$(CURDIR)/common \
	    -Wc,-Wall -Wc,-Wextra -Wc,-Wno-unused-parameter \
	    -Wc,-Wno-missing-field-initializers -Wc,-Werror=implicit-function-declaration \
	    -Wc,-Werror=format-security -Wl,-Wl,--exclude-libs,ALL \
	    $(notdir $(AP_SRC)) $(CURDIR)/$(B)/libjpki.a \
	    -lhiredis -lqrencode -lssl -lcrypto > apxs.log 2>&1 \
	    || (cat apxs.log; exit 1)
	@grep -E ': (warning|error):' $(B)/apache/apxs.log || true
	@cp $(B)/apache/.libs/mod_auth_jpki.so $@.tmp && mv -f $@.tmp $@

# The same module with AddressSanitizer and UBSan (for `make test`).
$(B)/asan/mod_auth_jpki.so: $(AP_SRC) $(AP_HDR) $(B)/asan/libjpki.a common/jpki.h
	@echo '  APXS  $@'
	@rm -rf $(B)/asan/apache && mkdir -p $(B)/asan/apache
	@cp $(AP_SRC) $(AP_HDR) $(B)/asan/apache/
	@cd $(B)/asan/apache && $(APXS) -c -o mod_auth_jpki.la -I$(CURDIR)/common \
	    -Wc,-O1 -Wc,-g -Wc,-fsanitize=address -Wc,-fsanitize=undefined \
	    -Wc,-fno-omit-frame-pointer -Wc,-fno-sanitize-recover=undefined \
	    -Wl,-fsanitize=address -Wl,-fsanitize=undefined \
	    $(notdir $(AP_SRC)) $(CURDIR)/$(B)/asan/libjpki.a \
	    -lhiredis -lqrencode -lssl -lcrypto > apxs.log 2>&1 \
	    || (cat apxs.log; exit 1)
	@cp $(B)/asan/apache/.libs/mod_auth_jpki.so $@.tmp && mv -f $@.tmp $@

sanitized: $(B)/asan/ngx_http_jpki_module.so $(B)/asan/mod_auth_jpki.so $(B)/asan/jpkictl $(B)/asan/jpki-login

# ---- CRL figures (bench/crl.sh; bench/run.sh sources it and calls
# crl_bench): a signed CRL of N entries made by bench/crlgen.c ------------
.PHONY: bench-crl
$(B)/crlgen: bench/crlgen.c
	@echo '  LD    $@'; $(CC) -O2 -g $(WARN) $(CPPFLAGS_ALL) $< -o $@ -lcrypto
bench-crl: $(B)/jpkictl $(B)/crlgen pki
	bash bench/crl.sh

# ---- account figures (bench/map.sh; bench/run.sh sources it and calls
# map_bench): jpkictl map import of 100,000 rows into Redis -------------
.PHONY: bench-map
bench-map: $(B)/jpkictl pki
	bash bench/map.sh
