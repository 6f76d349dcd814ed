/* chain._smt: the batch update of the sparse Merkle tree, chain.smt.apply_batch.
 *
 * The tree's rules (paths, hashes, node ids, refs, what is stale) are documented in chain/smt.py.
 * This is the Python version kept in tests/smt_reference.py, function for function (update,
 * update_path, build, join), and must give bit-for-bit the same results: the same refs, nodes and
 * stale ids in the same order, and the same get_inner calls for the nodes that are not in the
 * cache it is given (the reference is given no cache). The nodes it replaces leave that cache. Refs are the same Python tuples
 * (None, (hash, version) or (hash, version, key_hash)), since the store keeps and encodes them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#define KEY_BITS 256
#define HASH_BYTES 32
#define VERSION_BYTES 8

#define HASH(ref) ((const unsigned char *)PyBytes_AS_STRING(PyTuple_GET_ITEM(ref, 0)))
#define VERSION(ref) PyBytes_AS_STRING(PyTuple_GET_ITEM(ref, 1))
#define KEY_HASH(ref) ((const unsigned char *)PyBytes_AS_STRING(PyTuple_GET_ITEM(ref, 2)))
#define IS_LEAF(ref) (PyTuple_GET_SIZE(ref) == 3)

static const unsigned char EMPTY_HASH[HASH_BYTES];

/* Fetched once: OpenSSL 3's one-shot SHA256() looks the algorithm up on every call, which made a
 * hash cost three times as much. */
static EVP_MD *sha256_md;

typedef struct {
    const unsigned char *key_hash;
    PyObject *ref;
} Item;

typedef struct {
    unsigned char key_hash[HASH_BYTES];
    PyObject *key, *value; /* borrowed from the list of the changes' items */
} Change;

typedef struct {
    PyObject *cache, *get_inner, *stamp, *nodes, *stale_inner, *stale_leaves;
    EVP_MD_CTX *sha256;
    Item *changes; /* sorted by key hash; ref is the new leaf (owned), or None to delete */
    char *kept;    /* kept[i]: changes[i] sets its key to the value it already has */
    Item *items;   /* room for what build() is given: changes[lo:hi) and one old leaf */
} Update;

static int sha256(Update *u, const void *data, size_t size, unsigned char *digest)
{
    if (EVP_DigestInit_ex2(u->sha256, sha256_md, NULL) && EVP_DigestUpdate(u->sha256, data, size) &&
        EVP_DigestFinal_ex(u->sha256, digest, NULL))
        return 0;
    PyErr_SetString(PyExc_RuntimeError, "OpenSSL SHA-256 failed");
    return -1;
}

static int bit_at(const unsigned char *key_hash, int i)
{
    return (key_hash[i >> 3] >> (7 - (i & 7))) & 1;
}

/* inner_node_id(depth, the first `depth` bits of key_hash, version) */
static PyObject *inner_node_id(const unsigned char *key_hash, int depth, const char *version)
{
    Py_ssize_t size = depth / 8 + 1;
    int shift = 8 * size - depth; /* the prefix is written right-aligned, after its marker bit */
    PyObject *id = PyBytes_FromStringAndSize(NULL, size + VERSION_BYTES);
    if (id == NULL)
        return NULL;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(id);
    unsigned previous = 0;
    for (Py_ssize_t i = 0; i < size; i++) {
        /* depth 256 (33 bytes) is reached only when a corrupt tree is read, as in the reference */
        unsigned current = i < HASH_BYTES ? key_hash[i] : 0;
        out[i] = (unsigned char)((previous << (8 - shift)) | (current >> shift));
        previous = current;
    }
    out[0] |= 1 << (8 - shift);
    memcpy(out + size, version, VERSION_BYTES);
    return id;
}

static PyObject *leaf_node_id(const unsigned char *key_hash, const char *version)
{
    PyObject *id = PyBytes_FromStringAndSize(NULL, HASH_BYTES + VERSION_BYTES);
    if (id != NULL) {
        memcpy(PyBytes_AS_STRING(id), key_hash, HASH_BYTES);
        memcpy(PyBytes_AS_STRING(id) + HASH_BYTES, version, VERSION_BYTES);
    }
    return id;
}

static PyObject *too_deep(void)
{
    PyErr_SetString(PyExc_ValueError, "tree deeper than the 256 bits of a key hash");
    return NULL;
}

/* bisect_left on the key hashes of items[lo:hi) */
static Py_ssize_t bisect(const Item *items, Py_ssize_t lo, Py_ssize_t hi, const unsigned char *key_hash)
{
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (memcmp(items[mid].key_hash, key_hash, HASH_BYTES) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Where items[lo:hi) go from the left to the right child of the subtree at `depth` on the path of
 * key_hash: the first at or above that path's `depth`-bit prefix followed by a 1 bit. */
static Py_ssize_t split(const Item *items, Py_ssize_t lo, Py_ssize_t hi, const unsigned char *key_hash, int depth)
{
    unsigned char bound[HASH_BYTES] = {0};
    int byte = depth >> 3, bit = 0x80 >> (depth & 7);
    memcpy(bound, key_hash, byte);
    bound[byte] = (unsigned char)((key_hash[byte] & ~((bit << 1) - 1)) | bit);
    return bisect(items, lo, hi, bound);
}

static int is_bytes(PyObject *object, Py_ssize_t size)
{
    return PyBytes_CheckExact(object) && PyBytes_GET_SIZE(object) == size;
}

/* Refs from outside are checked once, so the code below can read them with the unchecked macros.
 * Exact tuples of exact bytes, so that no ref can be part of a reference cycle (see pack). */
static int check_ref(PyObject *ref)
{
    if (ref == Py_None)
        return 0;
    if (PyTuple_CheckExact(ref)) {
        Py_ssize_t size = PyTuple_GET_SIZE(ref);
        if ((size == 2 || size == 3) && is_bytes(PyTuple_GET_ITEM(ref, 0), HASH_BYTES) &&
            is_bytes(PyTuple_GET_ITEM(ref, 1), VERSION_BYTES) &&
            (size == 2 || is_bytes(PyTuple_GET_ITEM(ref, 2), HASH_BYTES)))
            return 0;
    }
    PyErr_SetString(PyExc_ValueError, "malformed subtree reference");
    return -1;
}

/* PyTuple_Pack for a ref or an inner node, kept out of the cyclic GC's lists from the start: they
 * hold only bytes and other refs, so they cannot be part of a cycle, and the GC would otherwise
 * scan the ~10 of them made per changed key before untracking them: a third of the time of a
 * 20k-key batch. `third` is NULL for a pair. */
static PyObject *pack(PyObject *first, PyObject *second, PyObject *third)
{
    PyObject *tuple = third == NULL ? PyTuple_Pack(2, first, second) : PyTuple_Pack(3, first, second, third);
    if (tuple != NULL)
        PyObject_GC_UnTrack(tuple);
    return tuple;
}

/* The node from the cache, or else from get_inner. Nodes in the cache were made by apply_batch or
 * decoded by the store and are not checked again: checking took a tenth of a batch's time. */
static PyObject *read_inner(Update *u, PyObject *id)
{
    PyObject *node = PyDict_GetItemWithError(u->cache, id);
    if (node != NULL)
        return Py_NewRef(node);
    if (PyErr_Occurred())
        return NULL;
    node = PyObject_CallOneArg(u->get_inner, id);
    if (node == NULL)
        return NULL;
    if (!PyTuple_Check(node) || PyTuple_GET_SIZE(node) != 2) {
        PyErr_SetString(PyExc_TypeError, "get_inner must return a (left, right) tuple");
        Py_DECREF(node);
        return NULL;
    }
    if (check_ref(PyTuple_GET_ITEM(node, 0)) < 0 || check_ref(PyTuple_GET_ITEM(node, 1)) < 0) {
        Py_DECREF(node);
        return NULL;
    }
    return node;
}

/* The node `id` is replaced: it is stale, and leaves the cache now, while its entry is still in the
 * processor's cache (the store dropping the replaced nodes afterwards took a tenth of a block). */
static int add_stale_inner(Update *u, PyObject *id)
{
    if (PyList_Append(u->stale_inner, id) < 0)
        return -1;
    int cached = PyDict_Contains(u->cache, id);
    return cached > 0 ? PyDict_DelItem(u->cache, id) : cached;
}

static int add_stale_leaf(Update *u, PyObject *leaf)
{
    PyObject *id = leaf_node_id(KEY_HASH(leaf), VERSION(leaf));
    if (id == NULL)
        return -1;
    int status = PyList_Append(u->stale_leaves, id);
    Py_DECREF(id);
    return status;
}

/* Into u->items: the leaves among changes[lo:hi), with `old` (if not NULL) in its sorted place
 * before changes[at], in place of that change when it has the same key hash. */
static Py_ssize_t gather(Update *u, Py_ssize_t lo, Py_ssize_t hi, const Item *old, Py_ssize_t at)
{
    Py_ssize_t n = 0;
    for (Py_ssize_t i = lo; i < hi; i++) {
        const Item *change = &u->changes[i];
        if (old != NULL && i == at) {
            u->items[n++] = *old;
            if (memcmp(change->key_hash, old->key_hash, HASH_BYTES) == 0)
                continue;
        }
        if (change->ref != Py_None)
            u->items[n++] = *change;
    }
    if (old != NULL && at == hi)
        u->items[n++] = *old;
    return n;
}

/* All functions below take borrowed refs and return a new reference (NULL with an exception set). */

/* The subtree at `depth` on the path of key_hash with these children: an inner node (written to
 * u->nodes), or the lone leaf or nothing, which moves up. */
static PyObject *join(Update *u, const unsigned char *key_hash, int depth, PyObject *left, PyObject *right)
{
    if (left == Py_None) {
        if (right == Py_None || IS_LEAF(right))
            return Py_NewRef(right);
    }
    else if (right == Py_None && IS_LEAF(left)) {
        return Py_NewRef(left);
    }
    unsigned char data[1 + 2 * HASH_BYTES], digest[HASH_BYTES];
    data[0] = 0x01;
    memcpy(data + 1, left == Py_None ? EMPTY_HASH : HASH(left), HASH_BYTES);
    memcpy(data + 1 + HASH_BYTES, right == Py_None ? EMPTY_HASH : HASH(right), HASH_BYTES);
    if (sha256(u, data, sizeof data, digest) < 0)
        return NULL;

    PyObject *id = inner_node_id(key_hash, depth, PyBytes_AS_STRING(u->stamp));
    PyObject *node = pack(left, right, NULL);
    int status = id != NULL && node != NULL ? PyDict_SetItem(u->nodes, id, node) : -1;
    Py_XDECREF(id);
    Py_XDECREF(node);
    if (status < 0)
        return NULL;
    PyObject *hash = PyBytes_FromStringAndSize((const char *)digest, HASH_BYTES);
    if (hash == NULL)
        return NULL;
    PyObject *ref = pack(hash, u->stamp, NULL);
    Py_DECREF(hash);
    return ref;
}

/* The subtree at `depth` holding exactly these leaves, sorted by key hash. */
static PyObject *build(Update *u, int depth, const Item *items, Py_ssize_t n)
{
    if (n == 0)
        Py_RETURN_NONE;
    if (n == 1)
        return Py_NewRef(items[0].ref);
    if (depth == KEY_BITS)
        return too_deep();
    Py_ssize_t mid = split(items, 0, n, items[0].key_hash, depth);
    PyObject *left = build(u, depth + 1, items, mid);
    if (left == NULL)
        return NULL;
    PyObject *right = build(u, depth + 1, items + mid, n - mid);
    PyObject *joined = right != NULL ? join(u, items[0].key_hash, depth, left, right) : NULL;
    Py_DECREF(left);
    Py_XDECREF(right);
    return joined;
}

static PyObject *update_path(Update *u, PyObject *ref, int depth, Py_ssize_t at);

/* The subtree `ref` at `depth` with changes[lo:hi) applied (all on its path); `ref` itself if
 * nothing changed. */
static PyObject *update(Update *u, PyObject *ref, int depth, Py_ssize_t lo, Py_ssize_t hi)
{
    if (ref == Py_None)
        return build(u, depth, u->items, gather(u, lo, hi, NULL, 0));
    if (IS_LEAF(ref)) {
        Item old = {KEY_HASH(ref), ref};
        Py_ssize_t at = bisect(u->changes, lo, hi, old.key_hash);
        if (at < hi && memcmp(u->changes[at].key_hash, old.key_hash, HASH_BYTES) == 0) {
            PyObject *new = u->changes[at].ref;
            if (new != Py_None && memcmp(HASH(new), HASH(ref), HASH_BYTES) == 0) {
                u->kept[at] = 1;
                return build(u, depth, u->items, gather(u, lo, hi, &old, at));
            }
            if (add_stale_leaf(u, ref) < 0)
                return NULL;
            return build(u, depth, u->items, gather(u, lo, hi, NULL, 0));
        }
        return build(u, depth, u->items, gather(u, lo, hi, &old, at));
    }
    if (hi - lo == 1)
        return update_path(u, ref, depth, lo);

    /* changes[lo:hi) are two or more key hashes sharing this subtree's depth-bit prefix: depth < 256 */
    const unsigned char *key_hash = u->changes[lo].key_hash;
    PyObject *node = NULL, *new_left = NULL, *new_right = NULL, *result = NULL;
    PyObject *id = inner_node_id(key_hash, depth, VERSION(ref));
    if (id == NULL || (node = read_inner(u, id)) == NULL)
        goto done;
    PyObject *left = PyTuple_GET_ITEM(node, 0), *right = PyTuple_GET_ITEM(node, 1);
    Py_ssize_t mid = split(u->changes, lo, hi, key_hash, depth);
    new_left = mid > lo ? update(u, left, depth + 1, lo, mid) : Py_NewRef(left);
    if (new_left == NULL)
        goto done;
    new_right = hi > mid ? update(u, right, depth + 1, mid, hi) : Py_NewRef(right);
    if (new_right == NULL)
        goto done;
    if (new_left == left && new_right == right)
        result = Py_NewRef(ref);
    else if (add_stale_inner(u, id) == 0)
        result = join(u, key_hash, depth, new_left, new_right);
done:
    Py_XDECREF(id);
    Py_XDECREF(node);
    Py_XDECREF(new_left);
    Py_XDECREF(new_right);
    return result;
}

/* `update` for a subtree that receives a single change: a loop down and back up. */
static PyObject *update_path(Update *u, PyObject *ref, int depth, Py_ssize_t at)
{
    const unsigned char *key_hash = u->changes[at].key_hash;
    PyObject *top = ref, *new = NULL, *result = NULL;
    struct {
        PyObject *id, *node;
    } trail[KEY_BITS + 1];
    int steps = 0;

    while (ref != Py_None && !IS_LEAF(ref)) {
        PyObject *id = inner_node_id(key_hash, depth, VERSION(ref));
        if (id == NULL)
            goto done;
        PyObject *node = read_inner(u, id);
        if (node == NULL) {
            Py_DECREF(id);
            goto done;
        }
        trail[steps].id = id;
        trail[steps++].node = node;
        if (depth == KEY_BITS) {
            too_deep();
            goto done;
        }
        ref = PyTuple_GET_ITEM(node, bit_at(key_hash, depth));
        depth++;
    }
    if (ref == Py_None || memcmp(KEY_HASH(ref), key_hash, HASH_BYTES) == 0) {
        PyObject *change = u->changes[at].ref;
        if (ref != Py_None) {
            if (change != Py_None && memcmp(HASH(change), HASH(ref), HASH_BYTES) == 0) {
                u->kept[at] = 1;
                result = Py_NewRef(top);
                goto done;
            }
            if (add_stale_leaf(u, ref) < 0)
                goto done;
        }
        new = Py_NewRef(change);
    }
    else if ((new = update(u, ref, depth, at, at + 1)) == NULL) {
        goto done;
    }
    if (new == ref) {
        result = Py_NewRef(top);
        goto done;
    }
    for (int i = steps - 1; i >= 0; i--) {
        depth--;
        if (add_stale_inner(u, trail[i].id) < 0)
            goto done;
        PyObject *left = PyTuple_GET_ITEM(trail[i].node, 0), *right = PyTuple_GET_ITEM(trail[i].node, 1);
        PyObject *joined = bit_at(key_hash, depth) ? join(u, key_hash, depth, left, new)
                                                   : join(u, key_hash, depth, new, right);
        Py_SETREF(new, joined);
        if (new == NULL)
            goto done;
    }
    result = new;
    new = NULL;
done:
    Py_XDECREF(new);
    for (int i = 0; i < steps; i++) {
        Py_DECREF(trail[i].id);
        Py_DECREF(trail[i].node);
    }
    return result;
}

static int hash_buffer(Update *u, PyObject *object, unsigned char *digest)
{
    Py_buffer view;
    if (PyObject_GetBuffer(object, &view, PyBUF_SIMPLE) < 0)
        return -1;
    int status = sha256(u, view.buf, view.len, digest);
    PyBuffer_Release(&view);
    return status;
}

/* (sha256(0x00 || key_hash || sha256(value)), stamp, key_hash) */
static PyObject *new_leaf(Update *u, const unsigned char *key_hash, PyObject *value)
{
    unsigned char data[1 + 2 * HASH_BYTES], digest[HASH_BYTES];
    data[0] = 0x00;
    memcpy(data + 1, key_hash, HASH_BYTES);
    if (hash_buffer(u, value, data + 1 + HASH_BYTES) < 0 || sha256(u, data, sizeof data, digest) < 0)
        return NULL;
    PyObject *hash = PyBytes_FromStringAndSize((const char *)digest, HASH_BYTES);
    PyObject *key = PyBytes_FromStringAndSize((const char *)key_hash, HASH_BYTES);
    PyObject *ref = hash != NULL && key != NULL ? pack(hash, u->stamp, key) : NULL;
    Py_XDECREF(hash);
    Py_XDECREF(key);
    return ref;
}

static int compare_changes(const void *a, const void *b)
{
    return memcmp(((const Change *)a)->key_hash, ((const Change *)b)->key_hash, HASH_BYTES);
}

static PyObject *apply_batch(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *root, *changes, *stamp, *cache, *get_inner;
    if (!PyArg_ParseTuple(args, "OOOO!O:apply_batch", &root, &changes, &stamp, &PyDict_Type, &cache, &get_inner))
        return NULL;
    if (!is_bytes(stamp, VERSION_BYTES)) {
        PyErr_SetString(PyExc_TypeError, "the version stamp must be 8 bytes");
        return NULL;
    }
    PyObject *pairs = PyMapping_Items(changes);
    if (pairs == NULL)
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(pairs);
    Update u = {.cache = cache, .get_inner = get_inner, .stamp = stamp};
    Change *sorted = PyMem_Calloc(n + 1, sizeof(Change));
    u.changes = PyMem_Calloc(n + 1, sizeof(Item));
    u.kept = PyMem_Calloc(n + 1, 1);
    u.items = PyMem_Calloc(n + 1, sizeof(Item));
    PyObject *new_root = NULL, *leaves = NULL, *result = NULL;
    u.sha256 = EVP_MD_CTX_new();
    if (sorted == NULL || u.changes == NULL || u.kept == NULL || u.items == NULL || u.sha256 == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyList_GET_ITEM(pairs, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_TypeError, "changes.items() must give (key, value) pairs");
            goto done;
        }
        sorted[i].key = PyTuple_GET_ITEM(pair, 0);
        sorted[i].value = PyTuple_GET_ITEM(pair, 1);
        if (hash_buffer(&u, sorted[i].key, sorted[i].key_hash) < 0)
            goto done;
    }
    qsort(sorted, n, sizeof(Change), compare_changes);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i > 0 && compare_changes(&sorted[i - 1], &sorted[i]) == 0) {
            PyErr_SetString(PyExc_ValueError, "two changes to the same key");
            goto done;
        }
        u.changes[i].key_hash = sorted[i].key_hash;
        u.changes[i].ref = sorted[i].value == Py_None ? Py_NewRef(Py_None)
                                                      : new_leaf(&u, sorted[i].key_hash, sorted[i].value);
        if (u.changes[i].ref == NULL)
            goto done;
    }
    if ((u.nodes = PyDict_New()) == NULL || (leaves = PyDict_New()) == NULL ||
        (u.stale_inner = PyList_New(0)) == NULL || (u.stale_leaves = PyList_New(0)) == NULL)
        goto done;
    if (n == 0)
        new_root = Py_NewRef(root);
    else if (check_ref(root) == 0)
        new_root = update(&u, root, 0, 0, n);
    if (new_root == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (sorted[i].value == Py_None || u.kept[i])
            continue;
        PyObject *id = leaf_node_id(sorted[i].key_hash, PyBytes_AS_STRING(stamp));
        PyObject *pair = PyTuple_Pack(2, sorted[i].key, sorted[i].value);
        int status = id != NULL && pair != NULL ? PyDict_SetItem(leaves, id, pair) : -1;
        Py_XDECREF(id);
        Py_XDECREF(pair);
        if (status < 0)
            goto done;
    }
    result = PyTuple_Pack(5, new_root, u.nodes, leaves, u.stale_inner, u.stale_leaves);
done:
    if (u.changes != NULL) {
        for (Py_ssize_t i = 0; i < n; i++)
            Py_XDECREF(u.changes[i].ref);
    }
    Py_XDECREF(new_root);
    Py_XDECREF(leaves);
    Py_XDECREF(u.nodes);
    Py_XDECREF(u.stale_inner);
    Py_XDECREF(u.stale_leaves);
    PyMem_Free(sorted);
    PyMem_Free(u.changes);
    PyMem_Free(u.kept);
    PyMem_Free(u.items);
    EVP_MD_CTX_free(u.sha256);
    Py_DECREF(pairs);
    return result;
}

/* chain.smt.encode_inner: each child as a tag (0 empty, 1 inner, 2 leaf) and its fields. */
static PyObject *encode_inner(PyObject *Py_UNUSED(module), PyObject *node)
{
    if (!PyTuple_CheckExact(node) || PyTuple_GET_SIZE(node) != 2) {
        PyErr_SetString(PyExc_ValueError, "an inner node is a pair of subtree references");
        return NULL;
    }
    PyObject *children[2] = {PyTuple_GET_ITEM(node, 0), PyTuple_GET_ITEM(node, 1)};
    Py_ssize_t size = 0;
    for (int i = 0; i < 2; i++) {
        if (check_ref(children[i]) < 0)
            return NULL;
        size += children[i] == Py_None ? 1 : 1 + HASH_BYTES + VERSION_BYTES + (IS_LEAF(children[i]) ? HASH_BYTES : 0);
    }
    PyObject *encoded = PyBytes_FromStringAndSize(NULL, size);
    if (encoded == NULL)
        return NULL;
    char *out = PyBytes_AS_STRING(encoded);
    for (int i = 0; i < 2; i++) {
        PyObject *ref = children[i];
        if (ref == Py_None) {
            *out++ = 0;
            continue;
        }
        *out++ = IS_LEAF(ref) ? 2 : 1;
        for (Py_ssize_t field = 0; field < PyTuple_GET_SIZE(ref); field++) {
            PyObject *part = PyTuple_GET_ITEM(ref, field);
            memcpy(out, PyBytes_AS_STRING(part), PyBytes_GET_SIZE(part));
            out += PyBytes_GET_SIZE(part);
        }
    }
    return encoded;
}

/* chain.smt.encode_inner_records: [(prefix + node id, encode_inner(node))] for a dict of nodes. */
static PyObject *encode_inner_records(PyObject *module, PyObject *args)
{
    PyObject *prefix, *nodes, *id, *node;
    if (!PyArg_ParseTuple(args, "O!O!:encode_inner_records", &PyBytes_Type, &prefix, &PyDict_Type, &nodes))
        return NULL;
    PyObject *records = PyList_New(PyDict_GET_SIZE(nodes));
    Py_ssize_t pos = 0, i = 0;
    while (records != NULL && PyDict_Next(nodes, &pos, &id, &node)) {
        if (!PyBytes_Check(id)) {
            PyErr_SetString(PyExc_ValueError, "node ids are bytes");
            Py_CLEAR(records);
            break;
        }
        PyObject *key = PyBytes_FromStringAndSize(NULL, PyBytes_GET_SIZE(prefix) + PyBytes_GET_SIZE(id));
        if (key != NULL) {
            memcpy(PyBytes_AS_STRING(key), PyBytes_AS_STRING(prefix), PyBytes_GET_SIZE(prefix));
            memcpy(PyBytes_AS_STRING(key) + PyBytes_GET_SIZE(prefix), PyBytes_AS_STRING(id), PyBytes_GET_SIZE(id));
        }
        PyObject *value = key != NULL ? encode_inner(module, node) : NULL;
        PyObject *record = value != NULL ? PyTuple_Pack(2, key, value) : NULL;
        Py_XDECREF(key);
        Py_XDECREF(value);
        if (record == NULL) {
            Py_CLEAR(records);
            break;
        }
        PyList_SET_ITEM(records, i++, record);
    }
    return records;
}

/* For each id, prefix + id as a key list entry: a 2-byte big-endian length, then the key. */
static PyObject *encode_key_list(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *prefix, *ids;
    if (!PyArg_ParseTuple(args, "O!O!:encode_key_list", &PyBytes_Type, &prefix, &PyList_Type, &ids))
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(ids), prefix_size = PyBytes_GET_SIZE(prefix), size = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *id = PyList_GET_ITEM(ids, i);
        if (!PyBytes_Check(id) || prefix_size + PyBytes_GET_SIZE(id) > 0xFFFF) {
            PyErr_SetString(PyExc_ValueError, "node ids are bytes and keys are at most 65535 bytes");
            return NULL;
        }
        size += 2 + prefix_size + PyBytes_GET_SIZE(id);
    }
    PyObject *encoded = PyBytes_FromStringAndSize(NULL, size);
    if (encoded == NULL)
        return NULL;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(encoded);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *id = PyList_GET_ITEM(ids, i);
        Py_ssize_t key_size = prefix_size + PyBytes_GET_SIZE(id);
        *out++ = (unsigned char)(key_size >> 8);
        *out++ = (unsigned char)key_size;
        memcpy(out, PyBytes_AS_STRING(prefix), prefix_size);
        memcpy(out + prefix_size, PyBytes_AS_STRING(id), PyBytes_GET_SIZE(id));
        out += key_size;
    }
    return encoded;
}

/* The keys of an encode_key_list record, or ValueError if it is cut short. */
static PyObject *decode_key_list(PyObject *Py_UNUSED(module), PyObject *data)
{
    if (!PyBytes_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "a key list is bytes");
        return NULL;
    }
    const unsigned char *in = (const unsigned char *)PyBytes_AS_STRING(data);
    Py_ssize_t size = PyBytes_GET_SIZE(data), pos = 0;
    PyObject *keys = PyList_New(0);
    if (keys == NULL)
        return NULL;
    while (pos < size) {
        Py_ssize_t key_size = pos + 2 <= size ? (in[pos] << 8 | in[pos + 1]) : -1;
        if (key_size < 0 || pos + 2 + key_size > size) {
            Py_DECREF(keys);
            PyErr_SetString(PyExc_ValueError, "truncated key list");
            return NULL;
        }
        PyObject *key = PyBytes_FromStringAndSize((const char *)in + pos + 2, key_size);
        if (key == NULL || PyList_Append(keys, key) < 0) {
            Py_XDECREF(key);
            Py_DECREF(keys);
            return NULL;
        }
        Py_DECREF(key);
        pos += 2 + key_size;
    }
    return keys;
}

static PyMethodDef methods[] = {
    {"apply_batch", apply_batch, METH_VARARGS,
     "apply_batch(root, changes, stamp, cache, get_inner) -> (root, inner_nodes, leaves, stale_inner, "
     "stale_leaves)\n\nchain.smt.apply_batch, with the version already encoded as 8 bytes."},
    {"encode_inner", encode_inner, METH_O, "encode_inner(node) -> bytes\n\nchain.smt.encode_inner."},
    {"encode_inner_records", encode_inner_records, METH_VARARGS,
     "encode_inner_records(prefix, nodes) -> [(key, value)]\n\nchain.smt.encode_inner_records."},
    {"encode_key_list", encode_key_list, METH_VARARGS,
     "encode_key_list(prefix, ids) -> bytes\n\nEach prefix + id as a 2-byte big-endian length and the key."},
    {"decode_key_list", decode_key_list, METH_O, "decode_key_list(data) -> list[bytes]\n\nThe keys of encode_key_list."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "chain._smt",
    .m_doc = "The sparse Merkle tree's batch update in C; see chain/smt.py.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__smt(void)
{
    if (sha256_md == NULL && (sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL) {
        PyErr_SetString(PyExc_ImportError, "OpenSSL provides no SHA-256");
        return NULL;
    }
    return PyModule_Create(&module);
}
