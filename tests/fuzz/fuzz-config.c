/* SPDX-License-Identifier: MIT */
/* libFuzzer target: tokend's configuration parser (common/tokend-config.c,
 * inih underneath). tokend_config_load() reads files, so each input is
 * written to a memfd and loaded through /proc/self/fd/N (a regular file;
 * its ".d" drop-in directory does not exist). Invariants: the documented
 * ranges of every field on success; an error message on failure; the
 * warning list's count and NULL terminator agree; tokend_config_check()
 * (--check-config) lists a problem whenever the load fails, and the dump of
 * a configuration it finds good loads back to the same dump. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz-util.h"
#include "tokend-config.h"

static int fd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        (void) argc;
        (void) argv;
        fd = memfd_create("fuzz-config", MFD_CLOEXEC);
        FUZZ_CHECK(fd >= 0);
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        return 0;
}

static void check_list(char *const *l, bool may_be_null) {
        size_t n = 0;

        FUZZ_CHECK(l || may_be_null);
        for (; l && l[n]; n++)
                FUZZ_CHECK(tokend_audience_name_valid(l[n]));
        FUZZ_CHECK(!l || (n >= 1 && n <= TOKEND_AUDIENCES_MAX));
}

static void check_config(const tokend_config *c) {
        size_t n = 0;

        FUZZ_CHECK(c->issuer && c->issuer[0]);
        FUZZ_CHECK(c->access_token_lifetime > 0 && c->refresh_token_lifetime >= 0);
        FUZZ_CHECK(c->algorithm != JOSE_ALG_INVALID);
        check_list(c->default_audience, false);
        check_list(c->allowed_audiences, true);
        FUZZ_CHECK(c->max_length >= 128 && c->max_length <= 8192);
        FUZZ_CHECK(c->clock_skew >= 0 && c->clock_skew <= 3600);
        FUZZ_CHECK(c->refresh_reuse_grace >= 0 && c->refresh_reuse_grace <= 300);
        FUZZ_CHECK(c->keys_directory && c->keys_directory[0] == '/');
        FUZZ_CHECK(!c->keys_active || !strchr(c->keys_active, '/'));
        FUZZ_CHECK(!c->keys_passphrase_file || c->keys_passphrase_file[0] == '/');
        /* SQLite's absolute path, or a PostgreSQL URI (issue 18) */
        FUZZ_CHECK(c->database && (c->database[0] == '/' || strncmp(c->database, "postgresql://", 13) == 0 ||
                                   strncmp(c->database, "postgres://", 11) == 0));
        FUZZ_CHECK(c->socket_path && c->socket_path[0] == '/' && strlen(c->socket_path) < 108);
        FUZZ_CHECK(c->socket_mode <= 0777);
        FUZZ_CHECK((c->bus == TOKEND_BUS_ADDRESS) == (c->bus_address != NULL));
        FUZZ_CHECK(c->pam_service && c->admin_group);
        FUZZ_CHECK(c->max_failures >= 1 && c->max_failures <= 1000000);
        FUZZ_CHECK(c->failure_window > 0);
        FUZZ_CHECK(c->max_request_bytes >= 1024 && c->max_request_bytes <= 16 * 1024 * 1024);
        FUZZ_CHECK(c->request_timeout >= 1 && c->request_timeout <= 3600);
        FUZZ_CHECK(c->max_connections >= 1 && c->max_connections <= 65536);
        for (; c->warnings && c->warnings[n]; n++)
                ;
        FUZZ_CHECK(n == c->n_warnings);
}

static void put(const void *data, size_t size) {
        size_t done = 0;
        FUZZ_CHECK(ftruncate(fd, 0) == 0);
        while (done < size) {
                ssize_t n = pwrite(fd, (const uint8_t *) data + done, size - done, (off_t) done);
                FUZZ_CHECK(n > 0);
                done += (size_t) n;
        }
}

static char *dump(const tokend_config *c) {
        char *s = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&s, &len);
        FUZZ_CHECK(m);
        FUZZ_CHECK(tokend_config_dump(c, m) == 0);
        FUZZ_CHECK(fclose(m) == 0);
        return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        tokend_config *c = NULL, *checked = NULL;
        char *error = NULL;
        size_t n = 0;
        int r;

        put(data, size);
        /* tokend --check-config: never fails but for memory, lists at least
         * one problem whenever the load fails, and its values are valid. */
        FUZZ_CHECK(tokend_config_check(path, NULL, &checked) == 0);
        check_config(checked);
        for (; checked->errors && checked->errors[n]; n++)
                FUZZ_CHECK(checked->errors[n][0]);
        FUZZ_CHECK(n == checked->n_errors && n <= TOKEND_CONFIG_MAX_ERRORS);

        r = tokend_config_load(path, NULL, &c, &error);
        if (r < 0) {
                FUZZ_CHECK(error && error[0]);
                FUZZ_CHECK(!c);
                FUZZ_CHECK(checked->n_errors > 0);
                free(error);
                tokend_config_free(checked);
                return 0;
        }
        FUZZ_CHECK(!error);
        check_config(c);
        FUZZ_CHECK(checked->n_errors == 0 || c->n_warnings > 0);
        tokend_config_free(c);

        /* --dump of a good configuration loads back to the same dump. */
        if (checked->n_errors == 0) {
                char *d1 = dump(checked), *d2;
                put(d1, strlen(d1));
                FUZZ_CHECK(tokend_config_check(path, NULL, &c) == 0);
                FUZZ_CHECK(c->n_errors == 0 && c->n_warnings == 0);
                d2 = dump(c);
                FUZZ_CHECK(strcmp(d1, d2) == 0);
                free(d1);
                free(d2);
                tokend_config_free(c);
        }
        tokend_config_free(checked);
        return 0;
}
