/*
 * fuzz_json_constraint.c - fuzz target for the incremental JSON validator behind
 * constrained decoding (src/server/json_constraint.c). The first byte picks the mode: bit 0
 * a forced tool call ({"name": " then one of 1-3 alternatives, as tool_choice does), bits
 * 3.. the chunk size the rest is fed in. Checked, against the file's stated invariants:
 *  - feeding in chunks accepts exactly when feeding everything at once does;
 *  - srv_jsonc_cost >= 0, and 0 exactly when srv_jsonc_done;
 *  - from the longest accepted prefix, a completion of exactly srv_jsonc_cost bytes exists
 *    (built one byte at a time, each lowering the cost by one), ends done, and the whole
 *    document is a JSON object for cJSON.
 */
#include "fuzz_main.h"
#include "server/server.h"

static char a0[] = "get_weather\", \"parameters\": {";
static char a1[] = "get_time\", \"arguments\": {";
static char a2[] = "get\", \"parameters\": {";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    char *const alts[] = {a0, a1, a2};
    static const char prefix[] = "{\"name\": \"";
    struct srv_jsonc j;
    srv_jsonc_init(&j);
    struct herd_buf doc;
    buf_init(&doc, 0);
    if (mode & 1) {
        FUZZ_ASSERT(srv_jsonc_feed(&j, prefix, sizeof prefix - 1));
        srv_jsonc_expect(&j, alts, 1 + (mode >> 1) % 3);
        buf_append(&doc, prefix, sizeof prefix - 1);
    }
    struct srv_jsonc whole = j;
    bool ok_whole = srv_jsonc_feed(&whole, s, n);
    size_t chunk = 1 + (size_t)(mode >> 3) % 8, valid = 0;
    bool ok = true;
    for (size_t at = 0; at < n; at += chunk) {
        size_t k = n - at < chunk ? n - at : chunk;
        struct srv_jsonc t = j;
        if (!srv_jsonc_feed(&t, s + at, k)) {
            ok = false;
            break;
        }
        j = t;
        valid = at + k;
    }
    FUZZ_ASSERT(ok == ok_whole);
    if (ok)
        FUZZ_ASSERT(srv_jsonc_cost(&whole) == srv_jsonc_cost(&j) &&
                    srv_jsonc_done(&whole) == srv_jsonc_done(&j));
    buf_append(&doc, s, valid);
    int32_t cost = srv_jsonc_cost(&j);
    FUZZ_ASSERT(cost >= 0 && cost < (1 << 16));
    FUZZ_ASSERT((cost == 0) == srv_jsonc_done(&j));
    for (int32_t left = cost; left > 0; left--) {
        int found = 0;
        for (int c = 0; c < 256 && !found; c++) {
            struct srv_jsonc t = j;
            char ch = (char)c;
            if (srv_jsonc_feed(&t, &ch, 1) && srv_jsonc_cost(&t) == left - 1) {
                j = t;
                buf_append(&doc, &ch, 1);
                found = 1;
            }
        }
        FUZZ_ASSERT(found);
    }
    FUZZ_ASSERT(srv_jsonc_done(&j));
    cJSON *parsed = cJSON_ParseWithLength(doc.data, doc.len);
    FUZZ_ASSERT(cJSON_IsObject(parsed));
    cJSON_Delete(parsed);
    buf_free(&doc);
    return 0;
}
