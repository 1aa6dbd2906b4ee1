/* SPDX-License-Identifier: MIT */
/* tokend.conf: defaults from nothing, every key parsed, drop-in order,
 * invalid values named with file, line and reason (each next to a control
 * that loads), unknown keys warned about, --state-dir and --bus overrides.
 * Real files in a temporary directory. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tmpdir.h"
#include "tokend-config.h"

/* Write content (len bytes, or strlen when len is 0) to DIR/name; returns the
 * path in a static buffer. */
static const char *write_file_n(test_tmpdir *f, const char *name, const char *content, size_t len) {
        static char path[256];
        snprintf(path, sizeof path, "%s/%s", f->dir, name);
        FILE *o = fopen(path, "we");
        assert_non_null(o);
        assert_int_equal(fwrite(content, 1, len, o), len);
        assert_int_equal(fclose(o), 0);
        return path;
}

static const char *write_file(test_tmpdir *f, const char *name, const char *content) {
        return write_file_n(f, name, content, strlen(content));
}

static void make_dir(test_tmpdir *f, const char *name) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", f->dir, name);
        assert_int_equal(mkdir(path, 0755), 0);
}

static tokend_config *load_ok(const char *path) {
        tokend_config *c = NULL;
        char *err = NULL;
        int r = tokend_config_load(path, NULL, &c, &err);
        if (r < 0)
                fail_msg("loading %s failed: %d %s", path, r, err ?: "(no message)");
        assert_null(err);
        assert_non_null(c);
        return c;
}

/* Load DIR/public.conf (control: readable, Issuer=public) and DIR/secret.conf
 * (mode 0: -EACCES, "cannot open: Permission denied"); as root in a child
 * that dropped to uid/gid 65534, else here. Returns 0 when both behaved. */
static int unreadable_checks(const char *dir) {
        char path[256];
        tokend_config *c = NULL;
        char *err = NULL;
        int ok;

        snprintf(path, sizeof path, "%s/public.conf", dir);
        if (tokend_config_load(path, NULL, &c, &err) < 0 || !c || !c->issuer || strcmp(c->issuer, "public") != 0) {
                fprintf(stderr, "control: %s did not load: %s\n", path, err ?: "(no message)");
                tokend_config_free(c);
                free(err);
                return -1;
        }
        tokend_config_free(c), c = NULL;
        snprintf(path, sizeof path, "%s/secret.conf", dir);
        ok = tokend_config_load(path, NULL, &c, &err) == -EACCES && !c && err &&
             strstr(err, "secret.conf: cannot open: Permission denied");
        if (!ok)
                fprintf(stderr, "%s: want -EACCES and \"cannot open: Permission denied\", got %s\n", path,
                        err ?: "(no message)");
        tokend_config_free(c);
        free(err);
        return ok ? 0 : -1;
}

static int unreadable_as_nobody(const char *dir) {
        if (geteuid() != 0)
                return unreadable_checks(dir);
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0 || geteuid() != 65534) {
                        perror("dropping to uid 65534");
                        _exit(2);
                }
                _exit(unreadable_checks(dir) == 0 ? 0 : 1);
        }
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        return WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void assert_strv(char *const *l, const char *const *want) {
        size_t i = 0;
        assert_non_null(l);
        for (; want[i]; i++) {
                assert_non_null(l[i]);
                assert_string_equal(l[i], want[i]);
        }
        assert_null(l[i]);
}

static void assert_defaults(const tokend_config *c) {
        assert_string_equal(c->issuer, "tokend");
        assert_int_equal(c->access_token_lifetime, 15 * 60);
        assert_int_equal(c->refresh_token_lifetime, 7 * 86400);
        assert_int_equal(c->algorithm, JOSE_ALG_EDDSA);
        assert_strv(c->default_audience, (const char *const[]){ "sshd", "login", "su", NULL });
        assert_null(c->allowed_audiences);
        assert_int_equal(c->max_length, 511);
        assert_int_equal(c->clock_skew, 30);
        assert_int_equal(c->refresh_reuse_grace, 0);
        assert_strv(c->step_up_audiences, (const char *const[]){ "sudo", NULL });
        assert_int_equal(c->step_up_lifetime, 300);
        assert_string_equal(c->keys_directory, "/var/lib/tokend/keys");
        assert_null(c->keys_active);
        assert_null(c->keys_passphrase_file);
        assert_int_equal(c->keys_publish_before_signing, -1);
        assert_string_equal(c->database, "/var/lib/tokend/tokend.db");
        assert_string_equal(c->socket_path, "/run/tokend/tokend.sock");
        assert_int_equal(c->socket_mode, 0666);
        assert_int_equal(c->bus, TOKEND_BUS_SYSTEM);
        assert_null(c->bus_address);
        assert_string_equal(c->pam_service, "tokend");
        assert_true(c->allow_peer_login);
        assert_string_equal(c->admin_group, "tokend-admin");
        assert_int_equal(c->max_failures, 5);
        assert_int_equal(c->failure_window, 15 * 60);
        assert_int_equal(c->max_devices_per_user, 100);
        assert_int_equal(c->peer_login_rate, 10);
        assert_int_equal(c->max_request_bytes, 65536);
        assert_int_equal(c->request_timeout, 10);
        assert_int_equal(c->max_connections, 1024);
        assert_int_equal(c->max_connections_per_user, 64);
        assert_int_equal(c->reserved_root_connections, 64);
        assert_false(c->enable_docs);
}

static void test_defaults(void **state) {
        test_tmpdir *f = *state;
        char path[256];

        _cleanup_(tokend_config_freep) tokend_config *d = NULL;
        assert_int_equal(tokend_config_new_default(&d), 0);
        assert_defaults(d);
        assert_null(d->warnings);
        assert_int_equal(d->n_warnings, 0);

        /* A missing file is fine; given explicitly it is worth a warning. */
        snprintf(path, sizeof path, "%s/missing.conf", f->dir);
        _cleanup_(tokend_config_freep) tokend_config *c = load_ok(path);
        assert_defaults(c);
        assert_int_equal(c->n_warnings, 1);
        assert_non_null(strstr(c->warnings[0], "missing.conf: not found"));
        assert_null(c->warnings[1]);

        _cleanup_(tokend_config_freep) tokend_config *e = load_ok(write_file(f, "empty.conf", ""));
        assert_defaults(e);
        assert_null(e->warnings);

        _cleanup_(tokend_config_freep) tokend_config *n = load_ok("/dev/null");
        assert_defaults(n);
        assert_null(n->warnings);
}

/* The shipped etc/tokend.conf documents the defaults: loading it must give
 * exactly them, without a single warning. */
static void test_shipped_config(void **state _unused_) {
        _cleanup_(tokend_config_freep) tokend_config *c = load_ok(TEST_DATA_DIR "/../../etc/tokend.conf");
        assert_defaults(c);
        assert_null(c->warnings);
}

static void test_every_key(void **state _unused_) {
        _cleanup_(tokend_config_freep) tokend_config *c = load_ok(TEST_DATA_DIR "/conf/full.conf");

        assert_null(c->warnings);
        assert_string_equal(c->issuer, "https://issuer.example");
        assert_int_equal(c->access_token_lifetime, 3600);
        assert_int_equal(c->refresh_token_lifetime, 0);
        assert_int_equal(c->algorithm, JOSE_ALG_ES256);
        assert_strv(c->default_audience, (const char *const[]){ "sshd", "login", NULL });
        assert_strv(c->allowed_audiences, (const char *const[]){ "sshd", "login", "sudo", "su", NULL });
        assert_int_equal(c->max_length, 1024);
        assert_int_equal(c->clock_skew, 60);
        assert_int_equal(c->refresh_reuse_grace, 10);
        assert_strv(c->step_up_audiences, (const char *const[]){ "sudo", "su", NULL });
        assert_int_equal(c->step_up_lifetime, 120);
        assert_string_equal(c->keys_directory, "/srv/tokend/keys");
        assert_string_equal(c->keys_active, "signing-2024.pem");
        assert_string_equal(c->keys_passphrase_file, "/etc/tokend/passphrase");
        assert_int_equal(c->keys_publish_before_signing, 120);
        assert_string_equal(c->database, "/srv/tokend/state.db");
        assert_string_equal(c->socket_path, "/run/test/tokend.sock");
        assert_int_equal(c->socket_mode, 0660);
        assert_int_equal(c->bus, TOKEND_BUS_ADDRESS);
        assert_string_equal(c->bus_address, "unix:path=/run/test/bus");
        assert_string_equal(c->pam_service, "tokend-test");
        assert_false(c->allow_peer_login);
        assert_string_equal(c->admin_group, "wheel");
        assert_int_equal(c->max_failures, 10);
        assert_int_equal(c->failure_window, 5400);
        assert_int_equal(c->max_devices_per_user, 7);
        assert_int_equal(c->peer_login_rate, 2);
        assert_int_equal(c->max_request_bytes, 1048576);
        assert_int_equal(c->request_timeout, 30);
        assert_int_equal(c->max_connections, 64);
        assert_true(c->enable_docs);
        assert_string_equal(c->network_listen, "0.0.0.0:8443 [::]:8443 127.0.0.1:9000");
        assert_string_equal(c->network_certificate, "/etc/tokend/tls/cert.pem");
        assert_string_equal(c->network_private_key, "/etc/tokend/tls/key.pem");
        assert_string_equal(c->network_client_ca, "/etc/tokend/tls/verifiers.pem");
        assert_string_equal(c->network_public_url, "https://issuer.example");
        assert_false(c->network_allow_plain_loopback);

        assert_true(tokend_config_audience_allowed(c, "sudo"));
        assert_false(tokend_config_audience_allowed(c, "cron"));
        assert_false(tokend_config_audience_allowed(c, NULL));
}

static void test_audience_patterns(void **state) {
        test_tmpdir *f = *state;
        const char *p = write_file(f, "pat.conf", "[Token]\nAllowedAudiences=sshd login su sshd@*\n");
        _cleanup_(tokend_config_freep) tokend_config *c = load_ok(p);
        assert_true(tokend_config_audience_allowed(c, "sshd@web1"));
        assert_true(tokend_config_audience_allowed(c, "sshd"));
        assert_false(tokend_config_audience_allowed(c, "su@web1"));
        assert_false(tokend_config_audience_allowed(c, "sshdx@web1"));
        assert_false(tokend_config_audience_allowed(c, "ssh@web1"));
        assert_false(tokend_config_audience_allowed(c, "sudo"));
}

static void test_listen_words(void **state _unused_) {
        struct sockaddr_storage sa;
        socklen_t len;
        assert_int_equal(tokend_listen_parse("127.0.0.1:8443", &sa, &len), 0);
        assert_int_equal(sa.ss_family, AF_INET);
        assert_true(tokend_sockaddr_is_loopback(&sa));
        assert_int_equal(tokend_listen_parse("[::1]:1", &sa, &len), 0);
        assert_int_equal(sa.ss_family, AF_INET6);
        assert_true(tokend_sockaddr_is_loopback(&sa));
        assert_int_equal(tokend_listen_parse("[::]:65535", &sa, &len), 0);
        assert_false(tokend_sockaddr_is_loopback(&sa));
        assert_int_equal(tokend_listen_parse("192.0.2.1:80", &sa, &len), 0);
        assert_false(tokend_sockaddr_is_loopback(&sa));
        static const char *const bad[] = { "", ":80", "127.0.0.1", "127.0.0.1:", "127.0.0.1:x", "[::1]", "[::1]:",
                                           "[127.0.0.1]:80", "::1:80", "host:80", "127.0.0.1:080000", "[::1:80",
                                           "1.2.3.4:-1", "[fe80::1%eth0]:80" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (tokend_listen_parse(bad[i], &sa, &len) == 0)
                        fail_msg("accepted %s", bad[i]);
}

static void test_value_forms(void **state) {
        test_tmpdir *f = *state;
        const char *p = write_file(f, "forms.conf",
                                   "; a comment\n"
                                   "[Token]\n"
                                   "  Issuer = indented\n"         /* indentation is not a continuation */
                                   "  MaxLength = 300\n"
                                   "DefaultAudience = sshd sshd\tlogin\n" /* tabs, duplicates dropped */
                                   "Issuer = later wins ; inline comment\n"
                                   "[Login]\n"
                                   "AllowPeerLogin = OFF\n"
                                   "[API]\n"
                                   "EnableDocs = 1\n"
                                   "[Socket]\n"
                                   "Mode = 0\n");
        _cleanup_(tokend_config_freep) tokend_config *c = load_ok(p);
        assert_null(c->warnings);
        assert_string_equal(c->issuer, "later wins");
        assert_int_equal(c->max_length, 300);
        assert_strv(c->default_audience, (const char *const[]){ "sshd", "login", NULL });
        assert_false(c->allow_peer_login);
        assert_true(c->enable_docs);
        assert_int_equal(c->socket_mode, 0);
}

static void test_dropins(void **state) {
        test_tmpdir *f = *state;
        char main_path[256];

        snprintf(main_path, sizeof main_path, "%s", write_file(f, "tokend.conf",
                                                               "[Token]\nIssuer=main\nMaxLength=600\nClockSkew=1min\n"));
        make_dir(f, "tokend.conf.d");
        write_file(f, "tokend.conf.d/10-first.conf", "[Token]\nIssuer=ten\nMaxLength=700\n[Bus]\nBus=none\n");
        write_file(f, "tokend.conf.d/20-second.conf", "[Token]\nIssuer=twenty\nClockSkew=\n");
        write_file(f, "tokend.conf.d/9-last.conf", "[Token]\nIssuer=nine\n"); /* "9" sorts after "20" */
        write_file(f, "tokend.conf.d/README", "not a config file at all\n");
        write_file(f, "tokend.conf.d/.hidden.conf", "[Token]\nIssuer=hidden\n");
        write_file(f, "tokend.conf.d/30-x.conf.bak", "[Token]\nIssuer=backup\n");

        _cleanup_(tokend_config_freep) tokend_config *c = load_ok(main_path);
        assert_null(c->warnings);
        assert_string_equal(c->issuer, "nine");
        assert_int_equal(c->max_length, 700);
        assert_int_equal(c->clock_skew, 30); /* "ClockSkew=" reset it to the default */
        assert_int_equal(c->bus, TOKEND_BUS_NONE);

        /* An error in a drop-in names the drop-in. */
        write_file(f, "tokend.conf.d/50-bad.conf", "[Token]\n\nAlgorithm=HS256\n");
        tokend_config *bad = NULL;
        char *err = NULL;
        assert_int_equal(tokend_config_load(main_path, NULL, &bad, &err), -EINVAL);
        assert_null(bad);
        assert_non_null(err);
        assert_non_null(strstr(err, "tokend.conf.d/50-bad.conf:3: [Token] Algorithm=HS256: must be one of"));
        free(err);
}

typedef struct bad_case {
        const char *content;
        const char *message; /* expected after "FILE:" */
} bad_case;

/* Load path, which must fail with -EINVAL and leave the output alone; returns
 * the error message (caller frees). */
static char *load_error(const char *path) {
        tokend_config *c = (tokend_config *) 0x1;
        char *err = NULL;
        int r = tokend_config_load(path, NULL, &c, &err);
        if (r != -EINVAL || !err)
                fail_msg("%s: r=%d error \"%s\"", path, r, err ?: "(null)");
        assert_ptr_equal(c, (tokend_config *) 0x1);
        return err;
}

static void test_invalid_values(void **state) {
        test_tmpdir *f = *state;
        static const bad_case cases[] = {
                { "[Token]\nAccessTokenLifetime=0\n", "2: [Token] AccessTokenLifetime=0: out of range (must be more than 0)" },
                { "[Token]\nAccessTokenLifetime=-5min\n", "2: [Token] AccessTokenLifetime=-5min: not a time span" },
                { "[Token]\nRefreshTokenLifetime=7 days later\n", "2: [Token] RefreshTokenLifetime=7 days later: not a time span" },
                { "[Token]\nAlgorithm=none\n", "2: [Token] Algorithm=none: must be one of EdDSA, ES256, RS256, PS256" },
                { "[Token]\nAlgorithm=eddsa\n", "2: [Token] Algorithm=eddsa: must be one of" },
                { "[Token]\nMaxLength=127\n", "2: [Token] MaxLength=127: out of range (128..8192)" },
                { "[Token]\nMaxLength=8193\n", "2: [Token] MaxLength=8193: out of range (128..8192)" },
                { "[Token]\nMaxLength=0x200\n", "2: [Token] MaxLength=0x200: not a decimal number" },
                { "[Token]\nMaxLength=-1\n", "2: [Token] MaxLength=-1: not a decimal number" },
                { "[Token]\nMaxLength=99999999999999999999999\n", "2: [Token] MaxLength=99999999999999999999999: out of range" },
                { "[Token]\nClockSkew=2h\n", "2: [Token] ClockSkew=2h: out of range (at most 1h)" },
                { "[Token]\nRefreshReuseGrace=10min\n", "2: [Token] RefreshReuseGrace=10min: out of range (at most 5min)" },
                { "[Token]\nStepUpLifetime=0\n", "2: [Token] StepUpLifetime=0: out of range (1s..1d)" },
                { "[Token]\nStepUpLifetime=1d 1s\n", "2: [Token] StepUpLifetime=1d 1s: out of range (1s..1d)" },
                { "[Token]\nStepUpAudiences=none sudo\n", "2: [Token] StepUpAudiences=none sudo: 'none' must stand alone" },
                { "[Token]\nStepUpAudiences=*\n", "2: [Token] StepUpAudiences=*: '*' must stand alone" },
                { "[Token]\nStepUpAudiences=su/do\n", "2: [Token] StepUpAudiences=su/do: audiences are names" },
                { "[Token]\nDefaultAudience=ss/hd\n", "2: [Token] DefaultAudience=ss/hd: audiences are names" },
                { "[Token]\nAllowedAudiences=* sshd\n", "2: [Token] AllowedAudiences=* sshd: '*' must stand alone" },
                { "[Token]\nDefaultAudience=sshd sudo\nAllowedAudiences=sshd login\n",
                  "2: [Token] DefaultAudience=sshd sudo: default audience 'sudo' is not in [Token] AllowedAudiences" },
                { "[Token]\nAllowedAudiences=sshd\n", "2: [Token] AllowedAudiences=sshd: default audience 'login' is not" },
                { "[Token]\nIssuer=a\x01" "b\n", "2: [Token] Issuer=a?b: contains control characters" },
                { "[Keys]\nDirectory=relative/keys\n", "2: [Keys] Directory=relative/keys: must be an absolute path" },
                { "[Keys]\nActive=../other.pem\n", "2: [Keys] Active=../other.pem: must be a file name" },
                { "[Store]\nDatabase=tokend.db\n", "2: [Store] Database=tokend.db: must be an absolute path (SQLite) or a postgresql:// URI" },
                { "[Store]\nDatabase=postgresql://h/db?x=a b\n", "2: [Store] Database=postgresql://h/db?x=a b: contains control characters or blanks (percent-encode them)" },
                { "[Store]\nDatabase=postgresql://u:x@h/db\n", "2: [Store] Database=postgresql://u:x@h/db: must not contain a password (use ~/.pgpass or passfile=)" },
                { "[Store]\nDatabase=postgres:///db?password=x\n", "2: [Store] Database=postgres:///db?password=x: must not contain a password (use ~/.pgpass or passfile=)" },
                { "[Socket]\nMode=0888\n", "2: [Socket] Mode=0888: not an octal file mode" },
                { "[Socket]\nMode=01777\n", "2: [Socket] Mode=01777: not an octal file mode" },
                { "[Bus]\nBus=bogus\n", "2: [Bus] Bus=bogus: must be system, session, none or a D-Bus address" },
                { "[Bus]\nBus=unix:path=/x y\n", "2: [Bus] Bus=unix:path=/x y: D-Bus address contains whitespace" },
                { "[Login]\nAllowPeerLogin=maybe\n", "2: [Login] AllowPeerLogin=maybe: not a boolean" },
                { "[Login]\nPAMService=../../etc/shadow\n", "2: [Login] PAMService=../../etc/shadow: must not start with" },
                { "[Login]\nAdminGroup=wheel staff\n", "2: [Login] AdminGroup=wheel staff: may only contain" },
                { "[Login]\nMaxFailures=0\n", "2: [Login] MaxFailures=0: out of range (1..1000000)" },
                { "[Login]\nFailureWindow=0\n", "2: [Login] FailureWindow=0: out of range (must be more than 0)" },
                { "[Login]\nMaxDevicesPerUser=0\n", "2: [Login] MaxDevicesPerUser=0: out of range (1..1000000)" },
                { "[Login]\nPeerLoginRate=1000001\n", "2: [Login] PeerLoginRate=1000001: out of range (1..1000000)" },
                { "[Limits]\nMaxRequestBytes=1023\n", "2: [Limits] MaxRequestBytes=1023: out of range (1024..16777216)" },
                { "[Limits]\nMaxRequestBytes=16777217\n", "2: [Limits] MaxRequestBytes=16777217: out of range" },
                { "[Limits]\nRequestTimeout=0\n", "2: [Limits] RequestTimeout=0: out of range (1s..1h)" },
                { "[Limits]\nMaxConnections=65537\n", "2: [Limits] MaxConnections=65537: out of range (1..65536)" },
                { "[Limits]\nMaxConnectionsPerUser=0\n", "2: [Limits] MaxConnectionsPerUser=0: out of range (1..65536)" },
                { "[Limits]\nReservedRootConnections=32769\n",
                  "2: [Limits] ReservedRootConnections=32769: out of range (0..32768)" },
                { "[API]\nEnableDocs=\"yes\"\n", "2: [API] EnableDocs=\"yes\": not a boolean" },
                { "[Network]\nListen=localhost:8443\n", "2: [Network] Listen=localhost:8443: expected numeric" },
                { "[Network]\nListen=::1:8443\n", "2: [Network] Listen=::1:8443: expected numeric" },
                { "[Network]\nListen=[::1]8443\n", "2: [Network] Listen=[::1]8443: expected numeric" },
                { "[Network]\nListen=127.0.0.1:0\n", "2: [Network] Listen=127.0.0.1:0: expected numeric" },
                { "[Network]\nListen=127.0.0.1:65536\n", "2: [Network] Listen=127.0.0.1:65536: expected" },
                { "[Network]\nPublicURL=ftp://id\n", "2: [Network] PublicURL=ftp://id: must be an https:// URL" },
                { "[Network]\nCertificate=cert.pem\n", "2: [Network] Certificate=cert.pem: must be an absolute path" },
                { "[Network]\nListen=127.0.0.1:1\nCertificate=/c.pem\n", "3: [Network] Certificate=/c.pem: [Network] "
                  "Certificate= and PrivateKey= go together" },
                { "[Network]\nListen=192.0.2.1:1\nAllowPlainLoopback=yes\n", "2: [Network] Listen=192.0.2.1:1: the "
                  "network listener needs" },
                { "# ok\n[Token]\nthis line has no equals sign\n", "3: syntax error" },
                { "[Token\nIssuer=x\n", "1: syntax error" },
                /* The first error wins, whatever its kind. */
                { "[Token]\nMaxLength=1\nbroken\n", "2: [Token] MaxLength=1: out of range" },
                { "[Token]\nbroken\nMaxLength=1\n", "2: syntax error" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char name[32], want[512];
                snprintf(name, sizeof name, "bad-%zu.conf", i);
                const char *path = write_file(f, name, cases[i].content);
                snprintf(want, sizeof want, "%s:%s", path, cases[i].message);

                _cleanup_(freep) char *err = load_error(path);
                if (!strstr(err, want))
                        fail_msg("case %zu: error \"%s\", want \"%s\"", i, err, want);
        }

        /* The fixture: line 5, after a comment, a blank line and a valid key. */
        _cleanup_(freep) char *fixture_err = load_error(TEST_DATA_DIR "/conf/bad-value.conf");
        assert_non_null(strstr(fixture_err, "conf/bad-value.conf:5: [Token] MaxLength=99999: out of range (128..8192)"));

        /* A long value is shown shortened, the reason in full. */
        const char *path = write_file(f, "bad-socket.conf", "[Socket]\nPath=/run/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                                      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\n");
        _cleanup_(freep) char *err = load_error(path);
        assert_non_null(strstr(err, "bad-socket.conf:2: [Socket] Path=/run/aaaa"));
        assert_non_null(strstr(err, "aaa...: too long for a Unix socket path (at most 107 bytes)"));
}

/* Controls for the cases above: the boundaries themselves load. */
static void test_boundaries_accepted(void **state) {
        test_tmpdir *f = *state;
        static const char *const ok[] = {
                "[Token]\nMaxLength=128\nAccessTokenLifetime=1\nClockSkew=1h\nRefreshReuseGrace=5min\n",
                "[Token]\nMaxLength=8192\nAlgorithm=PS256\nAllowedAudiences=*\n",
                "[Token]\nDefaultAudience=sudo\nAllowedAudiences=sudo a.b@c-d_e\n",
                "[Socket]\nMode=0777\nPath=/run/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\n",
                "[Limits]\nMaxRequestBytes=1024\nMaxConnections=65536\nRequestTimeout=1h\n",
                "[Limits]\nMaxRequestBytes=16777216\nMaxConnections=1\nRequestTimeout=1s\n",
                "[Limits]\nMaxConnectionsPerUser=1\nReservedRootConnections=0\n",
                "[Limits]\nMaxConnectionsPerUser=65536\nReservedRootConnections=32768\n",
                "[Login]\nMaxFailures=1000000\nAllowPeerLogin=TRUE\nPAMService=sshd\n",
                "[Bus]\nBus=session\n",
                "[Keys]\nActive=abcdefgh1234\n",
                "[Store]\nDatabase=postgresql:///tokend?host=/run/postgresql&sslmode=disable\n",
                "[Store]\nDatabase=postgres://tokend@db.example:5432/tokend?sslmode=verify-full\n",
        };
        for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
                char name[32];
                snprintf(name, sizeof name, "ok-%zu.conf", i);
                tokend_config *c = load_ok(write_file(f, name, ok[i]));
                assert_null(c->warnings);
                tokend_config_free(c);
        }
}

static void test_hostile_files(void **state) {
        test_tmpdir *f = *state;
        char line[400], want[256];
        tokend_config *c = NULL;
        char *err = NULL;

        /* A line longer than inih's buffer must not be split into two. */
        memset(line, 'a', sizeof line);
        memcpy(line, "[Token]\nIssuer=", 15);
        line[sizeof line - 1] = '\n';
        const char *p = write_file_n(f, "long.conf", line, sizeof line);
        snprintf(want, sizeof want, "%s:2: line too long", p);
        assert_int_equal(tokend_config_load(p, NULL, &c, &err), -EINVAL);
        assert_non_null(strstr(err, want));
        free(err), err = NULL;

        /* …but a long comment is fine (control). */
        line[8] = '#';
        tokend_config_free(load_ok(write_file_n(f, "long-comment.conf", line, sizeof line)));

        p = write_file_n(f, "nul.conf", "[Token]\nIssuer=a\0b\n", 19);
        snprintf(want, sizeof want, "%s:2: contains a NUL byte", p);
        assert_int_equal(tokend_config_load(p, NULL, &c, &err), -EINVAL);
        assert_non_null(strstr(err, want));
        free(err), err = NULL;

        /* A directory is not a configuration file. */
        make_dir(f, "dir.conf");
        snprintf(line, sizeof line, "%s/dir.conf", f->dir);
        assert_int_equal(tokend_config_load(line, NULL, &c, &err), -EINVAL);
        assert_non_null(strstr(err, "dir.conf: not a regular file"));
        free(err), err = NULL;

        /* Too large. */
        _cleanup_(freep) char *big = malloc(TOKEND_CONFIG_MAX_FILE_BYTES + 1);
        assert_non_null(big);
        memset(big, '\n', TOKEND_CONFIG_MAX_FILE_BYTES + 1);
        p = write_file_n(f, "big.conf", big, TOKEND_CONFIG_MAX_FILE_BYTES + 1);
        assert_int_equal(tokend_config_load(p, NULL, &c, &err), -EINVAL);
        assert_non_null(strstr(err, "big.conf: file too large"));
        free(err), err = NULL;
        tokend_config_free(load_ok(write_file_n(f, "big-ok.conf", big, TOKEND_CONFIG_MAX_FILE_BYTES)));

        /* Unreadable: root reads anything, so as root the check runs in a
         * child that became nobody (uid/gid 65534) first. */
        p = write_file(f, "secret.conf", "[Token]\n");
        assert_int_equal(chmod(p, 0), 0);
        assert_int_equal(chmod(write_file(f, "public.conf", "[Token]\nIssuer=public\n"), 0644), 0);
        assert_int_equal(chmod(f->dir, 0711), 0);
        assert_int_equal(unreadable_as_nobody(f->dir), 0);
        assert_null(c);

        /* The error message is optional. */
        p = write_file(f, "bad-noerr.conf", "[Token]\nMaxLength=1\n");
        assert_int_equal(tokend_config_load(p, NULL, &c, NULL), -EINVAL);
}

/* got (n entries, NULL-terminated) is exactly path + each of want. */
static void assert_messages(char *const *got, size_t n, const char *path, const char *const *want) {
        char line[512];
        size_t i = 0;
        for (; want[i]; i++) {
                assert_true(i < n);
                snprintf(line, sizeof line, "%s%s", path, want[i]);
                assert_string_equal(got[i], line);
        }
        assert_int_equal(n, i);
        assert_null(got[i]);
}

static void test_unknown_keys(void **state) {
        test_tmpdir *f = *state;
        const char *p = write_file(f, "unknown.conf",
                                   "TopLevel=1\n"
                                   "[Token]\n"
                                   "Issuer=known\n"
                                   "issuer=wrong-case\n"
                                   "Lifetime=1h\n"
                                   "[Tokens]\n"
                                   "Issuer=typo-section\n");

        _cleanup_(tokend_config_freep) tokend_config *c = load_ok(p);
        assert_string_equal(c->issuer, "known");
        assert_messages(c->warnings, c->n_warnings, p,
                        (const char *const[]){ ":1: unknown section [] TopLevel, ignoring",
                                               ":4: unknown key [Token] issuer (did you mean Issuer?), ignoring",
                                               ":5: unknown key [Token] Lifetime, ignoring",
                                               ":7: unknown section [Tokens] Issuer (did you mean [Token]?), ignoring",
                                               NULL });
}

/* The hint names the nearest key of the section (edit distance, case
 * folded), else the nearest section, else the section a key of that name
 * lives in; names too far off get none. */
static void test_did_you_mean(void **state) {
        static const struct {
                const char *conf, *want;
        } cases[] = {
                { "[Token]\nAccessTokenLifetme=5min\n", "unknown key [Token] AccessTokenLifetme (did you mean AccessTokenLifetime?)" },
                { "[Token]\nAcessTokenLiftime=5min\n", "unknown key [Token] AcessTokenLiftime (did you mean AccessTokenLifetime?)" },
                { "[Token]\naccesstokenlifetime=5min\n", "unknown key [Token] accesstokenlifetime (did you mean AccessTokenLifetime?)" },
                { "[Token]\nRefreshTokenLifetim=1d\n", "unknown key [Token] RefreshTokenLifetim (did you mean RefreshTokenLifetime?)" },
                { "[Token]\nAllowedAudience=sudo\n", "unknown key [Token] AllowedAudience (did you mean AllowedAudiences?)" },
                { "[Login]\nMaxFailure=3\n", "unknown key [Login] MaxFailure (did you mean MaxFailures?)" },
                { "[Login]\nAccessTokenLifetime=1h\n", "unknown key [Login] AccessTokenLifetime (did you mean AccessTokenLifetime in section [Token]?)" },
                { "[login]\nMaxFailures=3\n", "unknown section [login] MaxFailures (did you mean [Login]?)" },
                { "[Limit]\nMaxConnections=3\n", "unknown section [Limit] MaxConnections (did you mean [Limits]?)" },
                { "[Nowhere]\nIssuer=x\n", "unknown section [Nowhere] Issuer (did you mean Issuer in section [Token]?)" },
                /* Controls: nothing close, no hint. */
                { "[Token]\nLifetime=1h\n", "unknown key [Token] Lifetime, ignoring" },
                { "[Token]\nXyz=1\n", "unknown key [Token] Xyz, ignoring" },
                { "[Nowhere]\nFoo=1\n", "unknown section [Nowhere] Foo, ignoring" },
                { "[Token]\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=1\n",
                  "unknown key [Token] AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA, ignoring" },
        };
        test_tmpdir *f = *state;
        char want[512];

        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                const char *p = write_file(f, "typo.conf", cases[i].conf);
                _cleanup_(tokend_config_freep) tokend_config *c = load_ok(p);
                assert_int_equal(c->n_warnings, 1);
                if (strstr(cases[i].want, ", ignoring"))
                        snprintf(want, sizeof want, "%s:2: %s", p, cases[i].want);
                else
                        snprintf(want, sizeof want, "%s:2: %s, ignoring", p, cases[i].want);
                assert_string_equal(c->warnings[0], want);
                /* The typo changed nothing: defaults stay. */
                assert_int_equal(c->access_token_lifetime, 15 * 60);
                assert_int_equal(c->max_failures, 5);
        }
        /* The control: the right spelling is taken. */
        const char *p = write_file(f, "typo.conf", "[Token]\nAccessTokenLifetime=5min\n");
        _cleanup_(tokend_config_freep) tokend_config *c = load_ok(p);
        assert_int_equal(c->n_warnings, 0);
        assert_int_equal(c->access_token_lifetime, 5 * 60);
}

/* tokend_config_check(): every problem of every file, unknown keys as
 * problems; a good configuration has none and dumps to a file that loads
 * back to the same dump. */
static void test_check(void **state) {
        test_tmpdir *f = *state;
        char want[512];

        const char *main_conf = write_file(f, "main.conf",
                                           "[Token]\n"
                                           "AccessTokenLifetme=5min\n"
                                           "MaxLength=1\n"
                                           "Issuer=good\n"
                                           "[Login]\n"
                                           "MaxFailures=many\n");
        char path[256];
        snprintf(path, sizeof path, "%s", main_conf);
        make_dir(f, "main.conf.d");
        write_file(f, "main.conf.d/10-a.conf", "[Token]\nClockSkew=2h\n");
        write_file_n(f, "main.conf.d/20-b.conf", "[Token]\nIss\0uer=x\n", 18);
        write_file(f, "main.conf.d/30-c.conf", "no section line\n[Socket]\nMode=0644\n");

        tokend_config *c = NULL;
        assert_int_equal(tokend_config_check(path, NULL, &c), 0);
        assert_messages(c->errors, c->n_errors, path,
                        (const char *const[]){
                                ":2: unknown key [Token] AccessTokenLifetme (did you mean AccessTokenLifetime?)",
                                ":3: [Token] MaxLength=1: out of range (128..8192)",
                                ":6: [Login] MaxFailures=many: not a decimal number",
                                ".d/10-a.conf:2: [Token] ClockSkew=2h: out of range (at most 1h)",
                                ".d/20-b.conf:2: contains a NUL byte",
                                ".d/30-c.conf:1: syntax error (expected [Section] or Key=value)", NULL });
        /* The good lines around the bad ones were read. */
        assert_string_equal(c->issuer, "good");
        assert_int_equal(c->socket_mode, 0644);
        tokend_config_free(c);

        /* The same files through tokend_config_load(): the first problem only,
         * and the unknown key is a warning. */
        char *err = NULL;
        assert_int_equal(tokend_config_load(path, NULL, &c, &err), -EINVAL);
        snprintf(want, sizeof want, "%s:3: [Token] MaxLength=1: out of range (128..8192)", path);
        assert_string_equal(err, want);
        free(err);

        /* Control: a good configuration has no errors; its dump loads back,
         * under check, to the same dump. */
        main_conf = write_file(f, "good.conf",
                               "[Token]\nIssuer=me\nAccessTokenLifetime=90min\nRefreshTokenLifetime=0\n"
                               "DefaultAudience=sudo sshd\nAllowedAudiences=sshd sudo su\nAlgorithm=ES256\n"
                               "[Keys]\nActive=k1\n[Socket]\nMode=600\n[Bus]\nBus=unix:path=/run/x\n"
                               "[Login]\nAllowPeerLogin=off\n");
        snprintf(path, sizeof path, "%s", main_conf);
        char *dump1 = NULL, *dump2 = NULL;
        size_t len1 = 0, len2 = 0;
        assert_int_equal(tokend_config_check(path, NULL, &c), 0);
        assert_int_equal(c->n_errors, 0);
        assert_null(c->errors);
        FILE *m = open_memstream(&dump1, &len1);
        assert_int_equal(tokend_config_dump(c, m), 0);
        assert_int_equal(fclose(m), 0);
        tokend_config_free(c);
        assert_non_null(strstr(dump1, "[Token]\nIssuer=me\nAccessTokenLifetime=1h 30min\nRefreshTokenLifetime=0\n"));
        assert_non_null(strstr(dump1, "\nDefaultAudience=sudo sshd\nAllowedAudiences=sshd sudo su\n"));
        assert_non_null(strstr(dump1, "\nAlgorithm=ES256\n"));
        assert_non_null(strstr(dump1, "\n[Keys]\nDirectory=/var/lib/tokend/keys\nActive=k1\nPassphraseFile=\n"));
        assert_non_null(strstr(dump1, "\nMode=0600\n"));
        assert_non_null(strstr(dump1, "\n[Bus]\nBus=unix:path=/run/x\n"));
        assert_non_null(strstr(dump1, "\nAllowPeerLogin=no\n"));
        assert_non_null(strstr(dump1, "\n[API]\nEnableDocs=no\n"));

        const char *again = write_file(f, "again.conf", dump1);
        assert_int_equal(tokend_config_check(again, NULL, &c), 0);
        assert_int_equal(c->n_errors, 0);
        m = open_memstream(&dump2, &len2);
        assert_int_equal(tokend_config_dump(c, m), 0);
        assert_int_equal(fclose(m), 0);
        tokend_config_free(c);
        assert_string_equal(dump1, dump2);
        free(dump1);
        free(dump2);

        /* The defaults dump to a file that loads to the defaults. */
        assert_int_equal(tokend_config_new_default(&c), 0);
        m = open_memstream(&dump1, &len1);
        assert_int_equal(tokend_config_dump(c, m), 0);
        assert_int_equal(fclose(m), 0);
        tokend_config_free(c);
        again = write_file(f, "defaults.conf", dump1);
        free(dump1);
        c = load_ok(again);
        assert_int_equal(c->n_warnings, 0);
        assert_defaults(c);
        tokend_config_free(c);
}

static void test_state_dir(void **state) {
        test_tmpdir *f = *state;
        const char *p = write_file(f, "state.conf", "[Store]\nDatabase=/elsewhere/db\n[Keys]\nDirectory=/elsewhere/keys\n");
        char want[4200], cwd[4096];
        tokend_config *c = NULL;

        /* The command line beats the file. */
        assert_int_equal(tokend_config_load(p, "/srv/state", &c, NULL), 0);
        assert_string_equal(c->database, "/srv/state/tokend.db");
        assert_string_equal(c->keys_directory, "/srv/state/keys");
        assert_string_equal(c->socket_path, "/run/tokend/tokend.sock"); /* untouched */

        /* Relative → absolute against the current directory. */
        assert_non_null(getcwd(cwd, sizeof cwd));
        assert_int_equal(tokend_config_set_state_dir(c, "rel"), 0);
        snprintf(want, sizeof want, "%s/rel/tokend.db", cwd);
        assert_string_equal(c->database, want);
        snprintf(want, sizeof want, "%s/rel/keys", cwd);
        assert_string_equal(c->keys_directory, want);

        assert_int_equal(tokend_config_set_state_dir(c, ""), -EINVAL);
        assert_string_equal(c->keys_directory, want);
        tokend_config_free(c);

        /* A PostgreSQL database stays; the keys move. */
        p = write_file(f, "pg.conf", "[Store]\nDatabase=postgresql:///tokend?host=/run/postgresql\n");
        assert_int_equal(tokend_config_load(p, "/srv/state", &c, NULL), 0);
        assert_string_equal(c->database, "postgresql:///tokend?host=/run/postgresql");
        assert_string_equal(c->keys_directory, "/srv/state/keys");
        tokend_config_free(c);
}

static void test_set_bus(void **state _unused_) {
        _cleanup_(tokend_config_freep) tokend_config *c = NULL;
        assert_int_equal(tokend_config_new_default(&c), 0);

        assert_int_equal(tokend_config_set_bus(c, "unix:path=/tmp/bus,guid=0123"), 0);
        assert_int_equal(c->bus, TOKEND_BUS_ADDRESS);
        assert_string_equal(c->bus_address, "unix:path=/tmp/bus,guid=0123");
        /* Invalid: unchanged. */
        assert_int_equal(tokend_config_set_bus(c, "no-colon"), -EINVAL);
        assert_int_equal(tokend_config_set_bus(c, ":path=/x"), -EINVAL);
        assert_int_equal(tokend_config_set_bus(c, "UNIX:path=/x"), -EINVAL);
        assert_int_equal(tokend_config_set_bus(c, ""), -EINVAL);
        assert_int_equal(c->bus, TOKEND_BUS_ADDRESS);
        assert_string_equal(c->bus_address, "unix:path=/tmp/bus,guid=0123");
        assert_int_equal(tokend_config_set_bus(c, "session"), 0);
        assert_int_equal(c->bus, TOKEND_BUS_SESSION);
        assert_null(c->bus_address);
        assert_int_equal(tokend_config_set_bus(c, "none"), 0);
        assert_int_equal(c->bus, TOKEND_BUS_NONE);
}

/* StepUpAudiences: the listed names and their host-scoped forms, nothing
 * else; "none" switches it off, an empty value restores sudo. */
static void test_step_up_audiences(void **state) {
        test_tmpdir *f = *state;
        _cleanup_(tokend_config_freep) tokend_config *d = load_ok("/dev/null");
        assert_true(tokend_config_audience_step_up(d, "sudo"));
        assert_true(tokend_config_audience_step_up(d, "sudo@web1"));
        assert_false(tokend_config_audience_step_up(d, "sudoedit"));
        assert_false(tokend_config_audience_step_up(d, "sud"));
        assert_false(tokend_config_audience_step_up(d, "sshd"));
        assert_false(tokend_config_audience_step_up(d, "sshd@sudo"));
        assert_false(tokend_config_audience_step_up(d, NULL));
        assert_false(tokend_config_audience_step_up(NULL, "sudo"));

        _cleanup_(tokend_config_freep) tokend_config *n =
                load_ok(write_file(f, "none.conf", "[Token]\nStepUpAudiences=none\nStepUpLifetime=2s\n"));
        assert_null(n->step_up_audiences);
        assert_int_equal(n->step_up_lifetime, 2);
        assert_false(tokend_config_audience_step_up(n, "sudo"));

        _cleanup_(tokend_config_freep) tokend_config *l =
                load_ok(write_file(f, "list.conf", "[Token]\nStepUpAudiences=su sudo@web1\n"));
        assert_true(tokend_config_audience_step_up(l, "su"));
        assert_true(tokend_config_audience_step_up(l, "su@web2"));
        assert_true(tokend_config_audience_step_up(l, "sudo@web1"));
        assert_false(tokend_config_audience_step_up(l, "sudo"));
        assert_false(tokend_config_audience_step_up(l, "sudo@web2"));
        assert_false(tokend_config_audience_step_up(l, "sudo@web1@x"));

        _cleanup_(tokend_config_freep) tokend_config *e =
                load_ok(write_file(f, "reset.conf", "[Token]\nStepUpAudiences=none\nStepUpAudiences=\n"));
        assert_strv(e->step_up_audiences, (const char *const[]){ "sudo", NULL });
}

static void test_audience_names(void **state _unused_) {
        assert_true(tokend_audience_name_valid("sshd"));
        assert_true(tokend_audience_name_valid("a.b@c-d_E9"));
        char longest[TOKEND_AUDIENCE_MAX + 2];
        memset(longest, 'a', TOKEND_AUDIENCE_MAX);
        longest[TOKEND_AUDIENCE_MAX] = 0;
        assert_true(tokend_audience_name_valid(longest)); /* 128 */
        longest[TOKEND_AUDIENCE_MAX] = 'a';
        longest[TOKEND_AUDIENCE_MAX + 1] = 0;
        assert_false(tokend_audience_name_valid(longest)); /* 129 */
        /* SERVICE@HOST: one '@', neither first nor last */
        assert_true(tokend_audience_name_valid("sshd@web1.example.com"));
        assert_false(tokend_audience_name_valid("sshd@a@b"));
        assert_false(tokend_audience_name_valid("@web1"));
        assert_false(tokend_audience_name_valid("sshd@"));
        assert_false(tokend_audience_name_valid("sshd@*"));
        assert_false(tokend_audience_name_valid(""));
        assert_false(tokend_audience_name_valid(NULL));
        assert_false(tokend_audience_name_valid("*"));
        assert_false(tokend_audience_name_valid("a b"));
        assert_false(tokend_audience_name_valid("sshd\n"));
        assert_false(tokend_audience_name_valid("s\xc3\xa9"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_defaults, test_tmpdir_setup, test_tmpdir_teardown),
                cmocka_unit_test(test_shipped_config),
                cmocka_unit_test(test_every_key),
                cmocka_unit_test(test_listen_words),
                cmocka_unit_test_setup_teardown(test_audience_patterns, test_tmpdir_setup, test_tmpdir_teardown),
                cmocka_unit_test_setup_teardown(test_value_forms, test_tmpdir_setup, test_tmpdir_teardown),
                cmocka_unit_test_setup_teardown(test_dropins, test_tmpdir_setup, test_tmpdir_teardown),
                cmocka_unit_test_setup_teardown(test_invalid_values, test_tmpdir_setup, test_tmpdir_teardown),
                cmocka_unit_test_setup_teardown(test_boundaries_accepted, test_tmpdir_setup, test_tmpdir_teardown),
                cmocka_unit_test_setup_teardown(test_hostile_files, test_tmpdir_setup, test_tmpdir_teardown),
                cmocka_unit_test_setup_teardown(test_unknown_keys, test_tmpdir_setup, test_tmpdir_teardown),
                cmocka_unit_test_setup_teardown(test_did_you_mean, test_tmpdir_setup, test_tmpdir_teardown),
                cmocka_unit_test_setup_teardown(test_check, test_tmpdir_setup, test_tmpdir_teardown),
                cmocka_unit_test_setup_teardown(test_state_dir, test_tmpdir_setup, test_tmpdir_teardown),
                cmocka_unit_test(test_set_bus),
                cmocka_unit_test_setup_teardown(test_step_up_audiences, test_tmpdir_setup, test_tmpdir_teardown),
                cmocka_unit_test(test_audience_names),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
