/* SPDX-License-Identifier: MIT */
/* What the configuration shows people: did-you-mean hints for unknown keys
 * and sections, and the effective values (tokend --dump-config). */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "timespan.h"
#include "tokend-config-keys.h"


/* Levenshtein distance, ASCII case folded, between two short names (a
 * longer name is "far": config names are at most 64 characters). */
#define SUGGEST_NAME_MAX 64U
static size_t edit_distance(const char *a, const char *b) {
        size_t la = strlen(a), lb = strlen(b), row[SUGGEST_NAME_MAX + 1];

        if (la > SUGGEST_NAME_MAX || lb > SUGGEST_NAME_MAX)
                return SIZE_MAX;
        for (size_t j = 0; j <= lb; j++)
                row[j] = j;
        for (size_t i = 1; i <= la; i++) {
                size_t diag = row[0];
                row[0] = i;
                for (size_t j = 1; j <= lb; j++) {
                        size_t up = row[j];
                        size_t cost = tolower((unsigned char) a[i - 1]) != tolower((unsigned char) b[j - 1]);
                        size_t best = diag + cost;
                        if (up + 1 < best)
                                best = up + 1;
                        if (row[j - 1] + 1 < best)
                                best = row[j - 1] + 1;
                        row[j] = best;
                        diag = up;
                }
        }
        return row[lb];
}

/* How far off a name may be and still be suggested: 1 for short names, 2 up
 * to 8 characters, 3 beyond ("AccessTokenLifetme" → AccessTokenLifetime). */
static size_t suggest_limit(const char *name) {
        size_t n = strlen(name);
        return n <= 4 ? 1 : n <= 8 ? 2 : 3;
}

/* Write " (did you mean …?)" for an unknown [section] name into out, or ""
 * when nothing is close: the nearest key of the section, else (unknown
 * section) the nearest section, else the section a key of that name (in any
 * case) belongs to. */
void config_suggest(const char *section, const char *name, bool section_known, char out[160]) {
        size_t best = SIZE_MAX;
        const config_key *hit = NULL;

        out[0] = 0;
        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++) {
                size_t d = edit_distance(config_keys[i].name, name);
                if (streq(config_keys[i].section, section) && d <= suggest_limit(name) && d < best) {
                        best = d;
                        hit = &config_keys[i];
                }
        }
        if (hit) {
                snprintf(out, 160, " (did you mean %s?)", hit->name);
                return;
        }
        for (size_t i = 0; i < ELEMENTSOF(config_keys) && !section_known; i++) {
                size_t d = edit_distance(config_keys[i].section, section);
                if (d <= suggest_limit(section) && d < best) {
                        best = d;
                        hit = &config_keys[i];
                }
        }
        if (hit) {
                snprintf(out, 160, " (did you mean [%s]?)", hit->section);
                return;
        }
        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++)
                if (strcasecmp(config_keys[i].name, name) == 0) {
                        snprintf(out, 160, " (did you mean %s in section [%s]?)", config_keys[i].name, config_keys[i].section);
                        return;
                }
}

/* One key's effective value as it would be written in the file. */
static int format_value(const tokend_config *c, const config_key *k, char **ret) {
        const void *field = (const uint8_t *) c + k->offset;
        char buf[TIMESPAN_FORMAT_MAX];

        switch (k->kind) {
        case K_STRING: {
                const char *v = *(char *const *) field;
                *ret = strdup(v ?: "");
                break;
        }
        case K_TIMESPAN:
                if (*(const int64_t *) field < 0) /* unset: no built-in default */
                        *ret = strdup("");
                else
                        *ret = strdup(timespan_format(*(const int64_t *) field, buf, sizeof buf));
                break;
        case K_UNSIGNED:
                return asprintf(ret, "%u", *(const unsigned *) field) < 0 ? -ENOMEM : 0;
        case K_SIZE:
                return asprintf(ret, "%zu", *(const size_t *) field) < 0 ? -ENOMEM : 0;
        case K_BOOL:
                *ret = strdup(*(const bool *) field ? "yes" : "no");
                break;
        case K_POLICY:
                *ret = strdup(*(const bool *) field ? "best_effort" : "strict");
                break;
        case K_MODE:
                return asprintf(ret, "%04o", (unsigned) *(const mode_t *) field) < 0 ? -ENOMEM : 0;
        case K_ALG:
                *ret = strdup(jose_alg_to_string(*(const jose_alg *) field));
                break;
        case K_AUDIENCES:
        case K_AUDIENCES_OR_NONE: {
                char *const *l = *(char **const *) field;
                size_t len = 0;
                if (!l) {
                        *ret = strdup(k->kind == K_AUDIENCES_OR_NONE ? "none" : "*");
                        break;
                }
                for (size_t i = 0; l[i]; i++)
                        len += strlen(l[i]) + 1;
                char *s = calloc(1, len + 1);
                if (!s)
                        return -ENOMEM;
                for (size_t i = 0; l[i]; i++) {
                        if (i > 0)
                                strcat(s, " ");
                        strcat(s, l[i]);
                }
                *ret = s;
                break;
        }
        case K_BUS:
                *ret = strdup(c->bus == TOKEND_BUS_SYSTEM    ? "system"
                              : c->bus == TOKEND_BUS_SESSION ? "session"
                              : c->bus == TOKEND_BUS_NONE    ? "none"
                                                             : c->bus_address);
                break;
        }
        return *ret ? 0 : -ENOMEM;
}

int tokend_config_dump(const tokend_config *c, FILE *f) {
        const char *section = NULL;

        if (!c || !f)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++) {
                _cleanup_(freep) char *v = NULL;
                int r = format_value(c, &config_keys[i], &v);
                if (r < 0)
                        return r;
                if (!section || !streq(section, config_keys[i].section)) {
                        fprintf(f, "%s[%s]\n", section ? "\n" : "", config_keys[i].section);
                        section = config_keys[i].section;
                }
                fprintf(f, "%s=%s\n", config_keys[i].name, v);
        }
        return ferror(f) ? -EIO : 0;
}
