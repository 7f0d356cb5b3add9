/*
 * fuzz_chat_output.c - fuzz target for the tool-call output parser: any generated text
 * through herd_chat_parse_output gives content and calls or a clean error; every call has
 * a name and its arguments are a JSON object (what the OpenAI response carries). With the
 * server built, the same text goes through srv_parse_tool_calls, the server's wrapper that
 * builds the response's tool_calls array.
 */
#include "fuzz_main.h"

#include <cjson/cJSON.h> /* checking arguments */
#ifdef HERD_FUZZ_SERVER
#include "server/server.h"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    herd_chat_output *o = NULL;
    if (herd_chat_parse_output((const char *)data, size, &o) == HERD_OK) {
        FUZZ_ASSERT(o && o->content);
        for (size_t i = 0; i < o->n_calls; i++) {
            FUZZ_ASSERT(o->calls[i].name && o->calls[i].arguments);
            cJSON *a = cJSON_Parse(o->calls[i].arguments);
            FUZZ_ASSERT(cJSON_IsObject(a));
            cJSON_Delete(a);
        }
        herd_chat_output_free(o);
    }
#ifdef HERD_FUZZ_SERVER
    char *content = NULL;
    cJSON *calls = srv_parse_tool_calls((const char *)data, size, "chatcmpl-fuzz", &content);
    if (calls) {
        char *json = cJSON_PrintUnformatted(calls);
        FUZZ_ASSERT(json);
        cJSON_free(json);
    }
    cJSON_Delete(calls);
    herd_free(content);
#endif
    return 0;
}
