/* SPDX-License-Identifier: MIT */
/* Inside the configuration parser (not for its users: tokend-config.h is the
 * interface): the table of every [Section] Key= with its kind, default and
 * range (tokend-config-keys.c, which also parses and checks one value), used
 * by the loader (tokend-config.c) and by the dump and did-you-mean hints
 * (tokend-config-dump.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokend-config.h"

/* Each check returns NULL when fine, else the reason. */
typedef const char *(*check_fn)(const char *value);

typedef enum kind {
        K_STRING,    /* char *; def NULL = optional (empty → NULL) */
        K_TIMESPAN,  /* int64_t, [min, max] */
        K_UNSIGNED,  /* unsigned, [min, max] */
        K_SIZE,      /* size_t, [min, max] */
        K_BOOL,      /* bool */
        K_MODE,      /* mode_t, octal ≤ max */
        K_ALG,       /* jose_alg */
        K_AUDIENCES, /* char **; allow_any: "*" → NULL */
        K_AUDIENCES_OR_NONE, /* char **; "none" → NULL */
        K_BUS,       /* bus + bus_address */
        K_POLICY,    /* bool: "strict" → false, "best_effort" → true */
} kind;

typedef struct config_key {
        const char *section;
        const char *name;
        kind kind;
        size_t offset;
        const char *def; /* the built-in default, parsed like a file value */
        int64_t min, max;
        check_fn check;
        bool allow_any;
        const char *range; /* shown with "out of range" */
} config_key;

/* The number of keys: the table's definition must match it (a mismatch is a
 * compile error, "conflicting types"). */
#define CONFIG_N_KEYS 49
extern const config_key config_keys[CONFIG_N_KEYS];

/* The key [section] name, or NULL; *ret_section_known (optional): whether
 * the section has any key. */
const config_key *config_key_find(const char *section, const char *name, bool *ret_section_known);

/* Parse v (already defaulted when empty) for key k into c. On failure the
 * field is unchanged and either *reason says why (-EINVAL) or the value is
 * outside k's range (-ERANGE); -ENOMEM. */
int config_apply_value(tokend_config *c, const config_key *k, const char *v, const char **reason);

/* [Bus] Bus=: "system", "session", "none" or a D-Bus address (checked). */
int config_apply_bus(tokend_config *c, const char *v, const char **reason);

/* Write " (did you mean …?)" for an unknown [section] name into out, or ""
 * when nothing is close. */
void config_suggest(const char *section, const char *name, bool section_known, char out[160]);
