/*
 * pth.c - PyTorch checkpoints as torch.save writes them (Meta's consolidated.NN.pth):
 * a zip archive (PKWARE APPNOTE 6.3; zip64 records when the file passes 4 GiB) holding
 * <archive>/data.pkl, a pickle of the state dict, and <archive>/data/<key>, the raw
 * little-endian bytes of each storage. torch.save stores every entry uncompressed
 * (method 0) and pads local headers so data starts 64-byte aligned, so tensors are read
 * in place from the mapping.
 *
 * data.pkl is read by a restricted unpickler written for exactly what torch.save emits for
 * a dict of tensors (pickle protocol 2; pickletools documents each opcode):
 *   PROTO FRAME EMPTY_DICT EMPTY_TUPLE MARK TUPLE TUPLE1..3 BINUNICODE SHORT_BINUNICODE
 *   BININT BININT1 BININT2 LONG1 NEWTRUE NEWFALSE NONE BINPUT LONG_BINPUT MEMOIZE BINGET
 *   LONG_BINGET GLOBAL BINPERSID REDUCE SETITEM SETITEMS BUILD STOP
 * and globals from an allow-list: collections.OrderedDict, torch._utils._rebuild_tensor_v2
 * and the storage classes of the dtypes herd reads (torch.FloatStorage, HalfStorage,
 * BFloat16Storage, and Float8_e4m3fnStorage: the e4m3 codes of Meta's FP8 release, whose
 * row scales load_meta.c reads from fp8_scales_N.pt). Nothing is ever called: REDUCE of OrderedDict
 * makes an empty dict, REDUCE of _rebuild_tensor_v2 records a tensor (storage, offset,
 * size, stride), BINPERSID turns ('storage', class, key, location, numel) into a storage
 * reference. Any other opcode or global is refused with a one-line error naming it and its
 * offset. The result must be a dict of string keys to tensors; each tensor must be
 * contiguous (row-major strides) and lie inside its storage, which must be a stored entry
 * inside the file.
 */
#include "format/format.h"
#include "quant/quant.h" /* DTYPE_F8_E4M3_RAW */

#include <stdio.h> /* snprintf for entry names */

/* ---- zip */

struct zip_entry {
    const char *name; /* not NUL-terminated; in the mapping */
    size_t name_len;
    const uint8_t *data;
    uint64_t size;
};

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)rd16(p) | (uint32_t)rd16(p + 2) << 16; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* The central directory: its offset, size and entry count, from the end records. */
static herd_status zip_find_cd(const char *path, const uint8_t *d, size_t n, uint64_t *cd_off,
                               uint64_t *cd_size, uint64_t *count)
{
    if (n < 22)
        return herd_fail(HERD_ERR_FORMAT, "%s: not a PyTorch zip checkpoint (too short)", path);
    size_t lo = n > 22 + 65535 ? n - 22 - 65535 : 0;
    size_t e = n - 22 + 1;
    while (e-- > lo)
        if (rd32(d + e) == 0x06054b50u)
            break;
    if (e < lo || e == (size_t)-1 || rd32(d + e) != 0x06054b50u)
        return herd_fail(HERD_ERR_FORMAT, "%s: not a PyTorch zip checkpoint (no end of central "
                         "directory: truncated, or a legacy pre-1.6 torch.save file)", path);
    *count = rd16(d + e + 10);
    *cd_size = rd32(d + e + 12);
    *cd_off = rd32(d + e + 16);
    if (*count == 0xffff || *cd_size == 0xffffffffu || *cd_off == 0xffffffffu) {
        /* zip64: the locator sits just before the end record */
        if (e < 20 || rd32(d + e - 20) != 0x07064b50u)
            return herd_fail(HERD_ERR_FORMAT, "%s: zip64 end locator missing", path);
        uint64_t r = rd64(d + e - 20 + 8);
        if (n < 56 || r > n - 56 || rd32(d + r) != 0x06064b50u)
            return herd_fail(HERD_ERR_FORMAT, "%s: zip64 end record at %llu is past the end "
                             "or malformed", path, (unsigned long long)r);
        *count = rd64(d + r + 32);
        *cd_size = rd64(d + r + 40);
        *cd_off = rd64(d + r + 48);
    }
    if (*cd_off > n || *cd_size > n - *cd_off)
        return herd_fail(HERD_ERR_FORMAT, "%s: central directory past the end of the file",
                         path);
    if (*count > *cd_size / 46)
        return herd_fail(HERD_ERR_FORMAT, "%s: %llu zip entries do not fit the central "
                         "directory", path, (unsigned long long)*count);
    return HERD_OK;
}

/* Every entry, with its data located through its local header. */
static herd_status zip_read(const char *path, const uint8_t *d, size_t n, struct zip_entry **out,
                            size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    uint64_t cd_off = 0, cd_size = 0, count = 0;
    herd_status s = zip_find_cd(path, d, n, &cd_off, &cd_size, &count);
    if (s != HERD_OK)
        return s;
    struct zip_entry *es = herd_calloc(count ? (size_t)count : 1, sizeof *es);
    if (!es)
        return herd_fail(HERD_ERR_NOMEM, "%s: zip entries", path);
    const uint8_t *p = d + cd_off, *end = d + cd_off + cd_size;
    for (uint64_t i = 0; i < count; i++) {
        if (end - p < 46 || rd32(p) != 0x02014b50u) {
            s = herd_fail(HERD_ERR_FORMAT, "%s: zip central directory entry %llu is malformed",
                          path, (unsigned long long)i);
            goto fail;
        }
        uint16_t flags = rd16(p + 8), method = rd16(p + 10);
        uint64_t csize = rd32(p + 20), usize = rd32(p + 24), loff = rd32(p + 42);
        size_t nl = rd16(p + 28), xl = rd16(p + 30), cl = rd16(p + 32);
        if ((size_t)(end - p) - 46 < nl + xl + cl) {
            s = herd_fail(HERD_ERR_FORMAT, "%s: zip entry %llu runs past the central directory",
                          path, (unsigned long long)i);
            goto fail;
        }
        const char *name = (const char *)p + 46;
        /* zip64 extra: the fields whose 32-bit value is all ones, in this order */
        for (const uint8_t *x = p + 46 + nl, *xe = x + xl; xe - x >= 4;) {
            uint16_t id = rd16(x), len = rd16(x + 2);
            if ((size_t)(xe - x - 4) < len)
                break;
            if (id == 0x0001) {
                const uint8_t *f = x + 4, *fe = f + len;
                if (usize == 0xffffffffu && fe - f >= 8) { usize = rd64(f); f += 8; }
                if (csize == 0xffffffffu && fe - f >= 8) { csize = rd64(f); f += 8; }
                if (loff == 0xffffffffu && fe - f >= 8) { loff = rd64(f); f += 8; }
            }
            x += 4 + len;
        }
        if (method != 0 || csize != usize || (flags & 1)) {
            s = herd_fail(HERD_ERR_UNSUPPORTED, "%s: zip entry %.*s is compressed or encrypted "
                          "(method %u); torch.save stores entries uncompressed", path, (int)nl,
                          name, method);
            goto fail;
        }
        if (loff > n || n - loff < 30 || rd32(d + loff) != 0x04034b50u) {
            s = herd_fail(HERD_ERR_FORMAT, "%s: zip entry %.*s: local header at %llu is past the "
                          "end or malformed", path, (int)nl, name, (unsigned long long)loff);
            goto fail;
        }
        uint64_t data = loff + 30 + (uint64_t)rd16(d + loff + 26) + rd16(d + loff + 28);
        if (data > n || usize > n - data) {
            s = herd_fail(HERD_ERR_FORMAT, "%s: zip entry %.*s (%llu bytes) runs past the end of "
                          "the file (truncated?)", path, (int)nl, name,
                          (unsigned long long)usize);
            goto fail;
        }
        es[i] = (struct zip_entry){name, nl, d + data, usize};
        p += 46 + nl + xl + cl;
    }
    *out = es;
    *n_out = (size_t)count;
    return HERD_OK;
fail:
    herd_free(es);
    return s;
}

static const struct zip_entry *zip_find(const struct zip_entry *es, size_t n, const char *a,
                                        size_t na, const char *b)
{
    size_t nb = strlen(b);
    for (size_t i = 0; i < n; i++)
        if (es[i].name_len == na + nb && memcmp(es[i].name, a, na) == 0 &&
            memcmp(es[i].name + na, b, nb) == 0)
            return &es[i];
    return NULL;
}

/* ---- the restricted unpickler */

enum pv_kind { PV_NONE, PV_BOOL, PV_INT, PV_STR, PV_TUPLE, PV_DICT, PV_GLOBAL, PV_STORAGE,
               PV_TENSOR };
enum pv_global { G_ORDERED_DICT, G_REBUILD_V2, G_STORAGE };

struct pv {
    uint8_t kind;
    uint8_t global;   /* PV_GLOBAL: enum pv_global; PV_STORAGE/PV_GLOBAL storage: dtype */
    herd_dtype dtype; /* storage class's dtype */
    int64_t i;        /* PV_INT, PV_BOOL; PV_STORAGE numel */
    const char *s;    /* PV_STR (into the pickle); PV_STORAGE key */
    uint32_t n;       /* PV_STR length, PV_TUPLE count; PV_STORAGE key length */
    uint32_t first;   /* PV_TUPLE: first child in kids; PV_TENSOR: the tensor's rebuild args */
};

struct dict_item {
    uint32_t dict, key, value;
};

struct upk {
    const char *path;
    const uint8_t *p, *start, *end;
    struct pv *v;
    size_t n_v, cap_v;
    uint32_t *kids;
    size_t n_kids, cap_kids;
    uint32_t *stack;
    size_t n_stack, cap_stack;
    size_t *marks;
    size_t n_marks, cap_marks;
    uint32_t *memo;   /* UINT32_MAX: unset */
    size_t n_memo;
    struct dict_item *items;
    size_t n_items, cap_items;
};

static herd_status grow(void **a, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return HERD_OK;
    size_t c = *cap ? *cap * 2 : 64;
    while (c < need)
        c *= 2;
    void *g = herd_realloc(*a, c * elem);
    if (!g)
        return herd_fail(HERD_ERR_NOMEM, "unpickler");
    *a = g;
    *cap = c;
    return HERD_OK;
}

static herd_status bad(struct upk *u, const char *what)
{
    return herd_fail(HERD_ERR_FORMAT, "%s: data.pkl offset %zu: %s", u->path,
                     (size_t)(u->p - u->start), what);
}

static herd_status new_value(struct upk *u, struct pv v, uint32_t *idx)
{
    herd_status s = grow((void **)&u->v, &u->cap_v, u->n_v + 1, sizeof *u->v);
    if (s)
        return s;
    u->v[u->n_v] = v;
    *idx = (uint32_t)u->n_v++;
    return HERD_OK;
}

static herd_status push(struct upk *u, uint32_t idx)
{
    herd_status s = grow((void **)&u->stack, &u->cap_stack, u->n_stack + 1, sizeof *u->stack);
    if (s)
        return s;
    u->stack[u->n_stack++] = idx;
    return HERD_OK;
}

static herd_status push_new(struct upk *u, struct pv v)
{
    uint32_t idx;
    herd_status s = new_value(u, v, &idx);
    return s ? s : push(u, idx);
}

/* The stack above the last mark (a tuple's items, SETITEMS' pairs): [*from, n_stack). */
static herd_status pop_mark(struct upk *u, size_t *from)
{
    if (u->n_marks == 0)
        return bad(u, "no MARK on the stack");
    *from = u->marks[--u->n_marks];
    if (*from > u->n_stack) /* what was above the mark has been popped since */
        return bad(u, "a MARK above the top of the stack");
    return HERD_OK;
}

static herd_status make_tuple(struct upk *u, size_t from)
{
    size_t n = u->n_stack - from;
    herd_status s = grow((void **)&u->kids, &u->cap_kids, u->n_kids + n, sizeof *u->kids);
    if (s)
        return s;
    struct pv t = {.kind = PV_TUPLE, .n = (uint32_t)n, .first = (uint32_t)u->n_kids};
    if (n) /* an empty tuple may come before anything is allocated */
        memcpy(u->kids + u->n_kids, u->stack + from, n * sizeof *u->kids);
    u->n_kids += n;
    u->n_stack = from;
    return push_new(u, t);
}

static herd_status need_bytes(struct upk *u, size_t n)
{
    return (size_t)(u->end - u->p) < n ? bad(u, "truncated operand") : HERD_OK;
}

static herd_status memo_put(struct upk *u, uint64_t key)
{
    if (u->n_stack == 0)
        return bad(u, "memo put on an empty stack");
    /* torch.save numbers memo slots 0, 1, 2, ...: each takes at least two pickle bytes */
    if (key > (uint64_t)(u->end - u->start))
        return bad(u, "memo key out of range");
    if (key >= u->n_memo) {
        size_t n = (size_t)key + 1, cap = u->n_memo;
        uint32_t *m = herd_realloc(u->memo, n * sizeof *m);
        if (!m)
            return herd_fail(HERD_ERR_NOMEM, "unpickler memo");
        for (size_t i = cap; i < n; i++)
            m[i] = UINT32_MAX;
        u->memo = m;
        u->n_memo = n;
    }
    u->memo[key] = u->stack[u->n_stack - 1];
    return HERD_OK;
}

static herd_status memo_get(struct upk *u, uint64_t key)
{
    if (key >= u->n_memo || u->memo[key] == UINT32_MAX)
        return bad(u, "memo key never stored");
    return push(u, u->memo[key]);
}

/* GLOBAL "module\nname\n": the allow-list. */
static herd_status global(struct upk *u)
{
    const uint8_t *m = u->p, *nl1 = memchr(m, '\n', (size_t)(u->end - m));
    const uint8_t *nm = nl1 ? nl1 + 1 : NULL;
    const uint8_t *nl2 = nm ? memchr(nm, '\n', (size_t)(u->end - nm)) : NULL;
    if (!nl2)
        return bad(u, "truncated GLOBAL");
    size_t ml = (size_t)(nl1 - m), nl = (size_t)(nl2 - nm);
    u->p = nl2 + 1;
#define IS(a, b) (ml == strlen(a) && memcmp(m, a, ml) == 0 && nl == strlen(b) && \
                  memcmp(nm, b, nl) == 0)
    struct pv g = {.kind = PV_GLOBAL};
    if (IS("collections", "OrderedDict"))
        g.global = G_ORDERED_DICT;
    else if (IS("torch._utils", "_rebuild_tensor_v2"))
        g.global = G_REBUILD_V2;
    else if (IS("torch", "FloatStorage"))
        g = (struct pv){.kind = PV_GLOBAL, .global = G_STORAGE, .dtype = HERD_DTYPE_F32};
    else if (IS("torch", "HalfStorage"))
        g = (struct pv){.kind = PV_GLOBAL, .global = G_STORAGE, .dtype = HERD_DTYPE_F16};
    else if (IS("torch", "BFloat16Storage"))
        g = (struct pv){.kind = PV_GLOBAL, .global = G_STORAGE, .dtype = HERD_DTYPE_BF16};
    else if (IS("torch", "Float8_e4m3fnStorage")) /* Meta's FP8 release; scaled at load */
        g = (struct pv){.kind = PV_GLOBAL, .global = G_STORAGE, .dtype = DTYPE_F8_E4M3_RAW};
    else
        return herd_fail(HERD_ERR_UNSUPPORTED, "%s: data.pkl: global %.*s.%.*s is not allowed "
                         "(only tensors, storages and OrderedDict are read; nothing is "
                         "executed)", u->path, (int)(ml > 64 ? 64 : ml), (const char *)m,
                         (int)(nl > 64 ? 64 : nl), (const char *)nm);
#undef IS
    return push_new(u, g);
}

/* BINPERSID: ('storage', storage class, key, location, numel). */
static herd_status persid(struct upk *u)
{
    if (u->n_stack == 0)
        return bad(u, "BINPERSID on an empty stack");
    const struct pv *t = &u->v[u->stack[--u->n_stack]];
    if (t->kind != PV_TUPLE || t->n != 5)
        return bad(u, "persistent id is not a 5-tuple ('storage', class, key, location, "
                   "numel)");
    const struct pv *tag = &u->v[u->kids[t->first]], *cls = &u->v[u->kids[t->first + 1]];
    const struct pv *key = &u->v[u->kids[t->first + 2]], *num = &u->v[u->kids[t->first + 4]];
    if (tag->kind != PV_STR || tag->n != 7 || memcmp(tag->s, "storage", 7) != 0 ||
        cls->kind != PV_GLOBAL || cls->global != G_STORAGE || key->kind != PV_STR ||
        key->n == 0 || key->n > 32 || num->kind != PV_INT || num->i < 0)
        return bad(u, "persistent id is not ('storage', class, key, location, numel)");
    return push_new(u, (struct pv){.kind = PV_STORAGE, .dtype = cls->dtype, .i = num->i,
                                   .s = key->s, .n = key->n});
}

static herd_status reduce(struct upk *u)
{
    if (u->n_stack < 2)
        return bad(u, "REDUCE needs a callable and its arguments");
    uint32_t args = u->stack[--u->n_stack], fn = u->stack[--u->n_stack];
    const struct pv *f = &u->v[fn], *a = &u->v[args];
    if (f->kind != PV_GLOBAL || a->kind != PV_TUPLE)
        return bad(u, "REDUCE of something other than an allowed global");
    if (f->global == G_ORDERED_DICT) {
        if (a->n != 0)
            return bad(u, "OrderedDict() with arguments");
        return push_new(u, (struct pv){.kind = PV_DICT});
    }
    if (f->global != G_REBUILD_V2)
        return bad(u, "a storage class called directly");
    /* (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]) */
    if (a->n != 6 && a->n != 7)
        return bad(u, "_rebuild_tensor_v2 with other than 6 or 7 arguments");
    const uint32_t *k = u->kids + a->first;
    const struct pv *st = &u->v[k[0]], *off = &u->v[k[1]], *size = &u->v[k[2]],
                    *stride = &u->v[k[3]];
    if (st->kind != PV_STORAGE || off->kind != PV_INT || size->kind != PV_TUPLE ||
        stride->kind != PV_TUPLE || size->n != stride->n)
        return bad(u, "_rebuild_tensor_v2 arguments are not (storage, int, size, stride, ...)");
    for (uint32_t i = 0; i < size->n; i++)
        if (u->v[u->kids[size->first + i]].kind != PV_INT ||
            u->v[u->kids[stride->first + i]].kind != PV_INT)
            return bad(u, "tensor size or stride is not a tuple of ints");
    return push_new(u, (struct pv){.kind = PV_TENSOR, .first = args});
}

static herd_status setitems(struct upk *u, size_t from)
{
    if (from == 0 || (u->n_stack - from) % 2 != 0)
        return bad(u, "SETITEMS without a dict and key/value pairs");
    uint32_t d = u->stack[from - 1];
    if (u->v[d].kind != PV_DICT)
        return bad(u, "SETITEM(S) on something other than a dict");
    size_t n = (u->n_stack - from) / 2;
    herd_status s = grow((void **)&u->items, &u->cap_items, u->n_items + n, sizeof *u->items);
    if (s)
        return s;
    for (size_t i = 0; i < n; i++)
        u->items[u->n_items++] = (struct dict_item){d, u->stack[from + 2 * i],
                                                    u->stack[from + 2 * i + 1]};
    u->n_stack = from;
    return HERD_OK;
}

/* Runs the pickle; *top is the value STOP returned. */
static herd_status unpickle(struct upk *u, uint32_t *top)
{
    herd_status s = HERD_OK;
    while (s == HERD_OK) {
        if (u->p >= u->end)
            return bad(u, "no STOP before the end");
        uint8_t op = *u->p++;
        size_t from = 0;
        uint64_t x;
        switch (op) {
        case 0x80: /* PROTO */
            if ((s = need_bytes(u, 1)))
                break;
            if (*u->p < 2 || *u->p > 5)
                return bad(u, "pickle protocol other than 2..5");
            u->p++;
            break;
        case 0x95: /* FRAME: a length hint */
            if (!(s = need_bytes(u, 8)))
                u->p += 8;
            break;
        case '}': s = push_new(u, (struct pv){.kind = PV_DICT}); break;
        case ')': s = make_tuple(u, u->n_stack); break;
        case '(':
            if (!(s = grow((void **)&u->marks, &u->cap_marks, u->n_marks + 1, sizeof *u->marks)))
                u->marks[u->n_marks++] = u->n_stack;
            break;
        case 't':
            if (!(s = pop_mark(u, &from)))
                s = make_tuple(u, from);
            break;
        case 0x85: case 0x86: case 0x87: /* TUPLE1..3 */
            if (u->n_stack < (size_t)(op - 0x84))
                return bad(u, "TUPLEn on a short stack");
            s = make_tuple(u, u->n_stack - (size_t)(op - 0x84));
            break;
        case 'X': case 0x8c: { /* BINUNICODE, SHORT_BINUNICODE */
            size_t w = op == 'X' ? 4 : 1;
            if ((s = need_bytes(u, w)))
                break;
            x = w == 4 ? rd32(u->p) : *u->p;
            u->p += w;
            if ((s = need_bytes(u, (size_t)x)))
                break;
            s = push_new(u, (struct pv){.kind = PV_STR, .s = (const char *)u->p,
                                        .n = (uint32_t)x});
            u->p += x;
            break;
        }
        case 'K': case 'M': case 'J': { /* BININT1, BININT2, BININT */
            size_t w = op == 'K' ? 1 : op == 'M' ? 2 : 4;
            if ((s = need_bytes(u, w)))
                break;
            int64_t v = w == 1 ? *u->p : w == 2 ? rd16(u->p) : (int32_t)rd32(u->p);
            u->p += w;
            s = push_new(u, (struct pv){.kind = PV_INT, .i = v});
            break;
        }
        case 0x8a: { /* LONG1: n little-endian two's-complement bytes */
            if ((s = need_bytes(u, 1)))
                break;
            size_t n = *u->p++;
            if (n > 8)
                return bad(u, "integer wider than 64 bits");
            if ((s = need_bytes(u, n)))
                break;
            uint64_t v = 0;
            for (size_t i = 0; i < n; i++)
                v |= (uint64_t)u->p[i] << (8 * i);
            if (n && n < 8 && (u->p[n - 1] & 0x80))
                v |= ~(uint64_t)0 << (8 * n);
            u->p += n;
            s = push_new(u, (struct pv){.kind = PV_INT, .i = (int64_t)v});
            break;
        }
        case 0x88: case 0x89:
            s = push_new(u, (struct pv){.kind = PV_BOOL, .i = op == 0x88});
            break;
        case 'N': s = push_new(u, (struct pv){.kind = PV_NONE}); break;
        case 'q': case 'h':
            if ((s = need_bytes(u, 1)))
                break;
            x = *u->p++;
            s = op == 'q' ? memo_put(u, x) : memo_get(u, x);
            break;
        case 'r': case 'j':
            if ((s = need_bytes(u, 4)))
                break;
            x = rd32(u->p);
            u->p += 4;
            s = op == 'r' ? memo_put(u, x) : memo_get(u, x);
            break;
        case 0x94: s = memo_put(u, u->n_memo); break; /* MEMOIZE */
        case 'c': s = global(u); break;
        case 'Q': s = persid(u); break;
        case 'R': s = reduce(u); break;
        case 's':
            if (u->n_stack < 3)
                return bad(u, "SETITEM on a short stack");
            s = setitems(u, u->n_stack - 2);
            break;
        case 'u':
            if (!(s = pop_mark(u, &from)))
                s = setitems(u, from);
            break;
        case 'b': /* BUILD: a state dict's _metadata; only a dict's, and ignored */
            if (u->n_stack < 2 || u->v[u->stack[u->n_stack - 2]].kind != PV_DICT)
                return bad(u, "BUILD on something other than a dict");
            u->n_stack--;
            break;
        case '.':
            if (u->n_stack != 1)
                return bad(u, "STOP with other than one value on the stack");
            *top = u->stack[0];
            return HERD_OK;
        default:
            u->p--;
            return herd_fail(HERD_ERR_UNSUPPORTED, "%s: data.pkl offset %zu: pickle opcode 0x%02x "
                             "is not one torch.save writes for tensors; refused", u->path,
                             (size_t)(u->p - u->start), op);
        }
    }
    return s;
}

static void upk_free(struct upk *u)
{
    herd_free(u->v);
    herd_free(u->kids);
    herd_free(u->stack);
    herd_free(u->marks);
    herd_free(u->memo);
    herd_free(u->items);
}

/* ---- tensors */

void pth_close(struct pth_file *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n_tensors; i++)
        herd_free(f->tensors[i].name);
    herd_free(f->tensors);
    herd_unmap(&f->map);
    herd_free(f);
}

static herd_status elem_bytes(herd_dtype t, size_t *es)
{
    *es = t == HERD_DTYPE_F32 ? 4 : t == DTYPE_F8_E4M3_RAW ? 1 : 2;
    return HERD_OK;
}

/* One dict item as a tensor_info: the storage entry, offset, contiguous strides. */
static herd_status make_tensor(const struct upk *u, const struct zip_entry *es, size_t n_es,
                               const char *prefix, size_t plen, const struct pv *key,
                               const struct pv *val, struct tensor_info *t)
{
    const char *path = u->path;
    if (key->kind != PV_STR || key->n == 0 || key->n > 255)
        return herd_fail(HERD_ERR_FORMAT, "%s: state dict key is not a name", path);
    if (val->kind != PV_TENSOR)
        return herd_fail(HERD_ERR_UNSUPPORTED, "%s: state dict entry %.*s is not a tensor", path,
                         (int)key->n, key->s);
    const struct pv *a = &u->v[val->first];
    const uint32_t *k = u->kids + a->first;
    const struct pv *st = &u->v[k[0]], *size = &u->v[k[2]], *stride = &u->v[k[3]];
    int64_t off = u->v[k[1]].i;
    int nd = (int)size->n;
    if (nd > 4)
        return herd_fail(HERD_ERR_UNSUPPORTED, "%s: tensor %.*s has %d dimensions (at most 4)",
                         path, (int)key->n, key->s, nd);
    size_t esz;
    elem_bytes(st->dtype, &esz);
    /* contiguous row-major: stride[i] = prod(size[i+1..]); the element count must fit */
    int64_t numel = 1;
    t->n_dims = nd ? nd : 1;
    for (int i = 0; i < 4; i++)
        t->ne[i] = 1;
    for (int i = nd - 1; i >= 0; i--) {
        int64_t sz = u->v[u->kids[size->first + i]].i;
        int64_t sd = u->v[u->kids[stride->first + i]].i;
        if (sz < 0 || (sz > 1 && sd != numel))
            return herd_fail(HERD_ERR_UNSUPPORTED, "%s: tensor %.*s is not contiguous "
                             "(dimension %d: size %lld, stride %lld)", path, (int)key->n,
                             key->s, i, (long long)sz, (long long)sd);
        if (sz && numel > INT64_MAX / 16 / sz)
            return herd_fail(HERD_ERR_FORMAT, "%s: tensor %.*s is too large", path,
                             (int)key->n, key->s);
        numel *= sz;
        t->ne[nd - 1 - i] = sz;
    }
    if (off < 0 || off > st->i || numel > st->i - off)
        return herd_fail(HERD_ERR_FORMAT, "%s: tensor %.*s (offset %lld, %lld elements) is past "
                         "the end of its storage (%lld elements)", path, (int)key->n, key->s,
                         (long long)off, (long long)numel, (long long)st->i);
    char ename[48];
    int el = snprintf(ename, sizeof ename, "/data/%.*s", (int)st->n, st->s);
    const struct zip_entry *e = el > 0 && (size_t)el < sizeof ename
                                    ? zip_find(es, n_es, prefix, plen, ename) : NULL;
    if (!e)
        return herd_fail(HERD_ERR_FORMAT, "%s: tensor %.*s: storage %.*s has no zip entry", path,
                         (int)key->n, key->s, (int)st->n, st->s);
    if ((uint64_t)st->i > e->size / esz)
        return herd_fail(HERD_ERR_FORMAT, "%s: tensor %.*s: storage %.*s holds %llu bytes, less "
                         "than its %lld elements", path, (int)key->n, key->s, (int)st->n, st->s,
                         (unsigned long long)e->size, (long long)st->i);
    t->type = st->dtype;
    t->data = e->data + (size_t)off * esz;
    t->nbytes = (size_t)numel * esz;
    if (!(t->name = herd_strndup(key->s, key->n)))
        return herd_fail(HERD_ERR_NOMEM, "tensor name");
    return HERD_OK;
}

herd_status pth_open(const char *path, struct pth_file **out)
{
    *out = NULL;
    struct pth_file *f = herd_calloc(1, sizeof *f);
    struct zip_entry *es = NULL;
    size_t n_es = 0;
    struct upk u = {.path = path};
    if (!f)
        return herd_fail(HERD_ERR_NOMEM, "%s", path);
    herd_status s = herd_map_file(path, &f->map);
    if (s != HERD_OK)
        goto fail;
    if ((s = zip_read(path, f->map.data, f->map.size, &es, &n_es)))
        goto fail;
    /* <archive>/data.pkl: the archive name is the prefix of the storages */
    const struct zip_entry *pkl = NULL;
    for (size_t i = 0; i < n_es && !pkl; i++)
        if (es[i].name_len >= 9 &&
            memcmp(es[i].name + es[i].name_len - 9, "/data.pkl", 9) == 0)
            pkl = &es[i];
    if (!pkl) {
        s = herd_fail(HERD_ERR_FORMAT, "%s: no data.pkl in the zip (not a torch.save file)",
                      path);
        goto fail;
    }
    u.start = u.p = pkl->data;
    u.end = pkl->data + pkl->size;
    uint32_t top = 0;
    if ((s = unpickle(&u, &top)))
        goto fail;
    if (u.v[top].kind != PV_DICT) {
        s = herd_fail(HERD_ERR_UNSUPPORTED, "%s: data.pkl is not a dict of tensors", path);
        goto fail;
    }
    size_t n = 0;
    for (size_t i = 0; i < u.n_items; i++)
        n += u.items[i].dict == top;
    if (!(f->tensors = herd_calloc(n ? n : 1, sizeof *f->tensors))) {
        s = herd_fail(HERD_ERR_NOMEM, "%s: tensors", path);
        goto fail;
    }
    for (size_t i = 0; i < u.n_items; i++) {
        if (u.items[i].dict != top)
            continue;
        if ((s = make_tensor(&u, es, n_es, pkl->name, pkl->name_len - 9,
                             &u.v[u.items[i].key], &u.v[u.items[i].value],
                             &f->tensors[f->n_tensors])))
            goto fail;
        f->n_tensors++;
    }
    upk_free(&u);
    herd_free(es);
    *out = f;
    return HERD_OK;
fail:
    upk_free(&u);
    herd_free(es);
    pth_close(f);
    return s;
}

const struct tensor_info *pth_find_tensor(const struct pth_file *f, const char *name)
{
    for (size_t i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}
