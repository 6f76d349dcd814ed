/* chain._smt: the batch update of the sparse Merkle tree, chain.smt.apply_batch.
 *
 * The tree's rules (paths, hashes, node ids, refs, what is stale) are documented in chain/smt.py.
 * This is the Python version kept in tests/smt_reference.py, function for function (update,
 * update_path, build, join), and must give bit-for-bit the same results: the same refs, nodes and
 * stale ids in the same order, and the same get_inner calls for the nodes that are not in the
 * cache it is given (the reference is given no cache). The nodes it replaces leave that cache.
 *
 * Inside, a ref is its encoded form (chain.smt.encode_ref) held by value, and an inner node is the
 * two encoded refs of its children, the bytes the store keeps: a new node is two copies, reading
 * one is two copies, and no Python object is made for a ref but the root's.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#define KEY_BITS 256
#define HASH_BYTES 32
#define VERSION_BYTES 8
#define TAG_EMPTY 0
#define TAG_INNER 1
#define TAG_LEAF 2
#define INNER_REF_BYTES (1 + HASH_BYTES + VERSION_BYTES)
#define LEAF_REF_BYTES (INNER_REF_BYTES + HASH_BYTES)

typedef struct {
    unsigned char b[LEAF_REF_BYTES]; /* tag, then hash and version, then a leaf's key hash */
} Ref;

#define TAG(ref) ((ref)->b[0])
#define HASH(ref) ((ref)->b + 1)
#define VERSION(ref) ((ref)->b + 1 + HASH_BYTES)
#define KEY_HASH(ref) ((ref)->b + INNER_REF_BYTES)

static const unsigned char EMPTY_HASH[HASH_BYTES];
static const Ref EMPTY_REF = {{TAG_EMPTY}};

/* Fetched once: OpenSSL 3's one-shot SHA256() looks the algorithm up on every call, which made a
 * hash cost three times as much. */
static EVP_MD *sha256_md;

typedef struct {
    const unsigned char *key_hash;
    const Ref *ref;
} Item;

typedef struct {
    unsigned char key_hash[HASH_BYTES];
    PyObject *key, *value; /* borrowed from the list of the changes' items */
} Change;

typedef struct {
    PyObject *id; /* the node's id, owned */
    Ref left, right;
} Step;

typedef struct {
    PyObject *cache, *get_inner, *nodes, *stale_inner, *stale_leaves;
    const unsigned char *stamp;
    EVP_MD_CTX *sha256;
    Item *changes; /* sorted by key hash; ref is the new leaf, or the empty ref to delete */
    Ref *leaves;   /* what changes[i].ref points to */
    char *kept;    /* kept[i]: changes[i] sets its key to the value it already has */
    Item *items;   /* room for what build() is given: changes[lo:hi) and one old leaf */
    Step *trail;   /* update_path's way down (one runs at a time) */
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

static Py_ssize_t ref_size(const Ref *ref)
{
    return TAG(ref) == TAG_EMPTY ? 1 : TAG(ref) == TAG_INNER ? INNER_REF_BYTES : LEAF_REF_BYTES;
}

/* inner_node_id(depth, the first `depth` bits of key_hash, version) */
static PyObject *inner_node_id(const unsigned char *key_hash, int depth, const unsigned char *version)
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

static PyObject *leaf_node_id(const unsigned char *key_hash, const unsigned char *version)
{
    PyObject *id = PyBytes_FromStringAndSize(NULL, HASH_BYTES + VERSION_BYTES);
    if (id != NULL) {
        memcpy(PyBytes_AS_STRING(id), key_hash, HASH_BYTES);
        memcpy(PyBytes_AS_STRING(id) + HASH_BYTES, version, VERSION_BYTES);
    }
    return id;
}

static int too_deep(void)
{
    PyErr_SetString(PyExc_ValueError, "tree deeper than the 256 bits of a key hash");
    return -1;
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

/* The root as a Ref: None, (hash, version) or (hash, version, key_hash), each part exact bytes. */
static int root_to_ref(PyObject *root, Ref *out)
{
    *out = EMPTY_REF;
    if (root == Py_None)
        return 0;
    if (PyTuple_CheckExact(root)) {
        Py_ssize_t size = PyTuple_GET_SIZE(root);
        if ((size == 2 || size == 3) && is_bytes(PyTuple_GET_ITEM(root, 0), HASH_BYTES) &&
            is_bytes(PyTuple_GET_ITEM(root, 1), VERSION_BYTES) &&
            (size == 2 || is_bytes(PyTuple_GET_ITEM(root, 2), HASH_BYTES))) {
            TAG(out) = size == 2 ? TAG_INNER : TAG_LEAF;
            memcpy(HASH(out), PyBytes_AS_STRING(PyTuple_GET_ITEM(root, 0)), HASH_BYTES);
            memcpy(VERSION(out), PyBytes_AS_STRING(PyTuple_GET_ITEM(root, 1)), VERSION_BYTES);
            if (size == 3)
                memcpy(KEY_HASH(out), PyBytes_AS_STRING(PyTuple_GET_ITEM(root, 2)), HASH_BYTES);
            return 0;
        }
    }
    PyErr_SetString(PyExc_ValueError, "malformed subtree reference");
    return -1;
}

static PyObject *ref_to_root(const Ref *ref)
{
    if (TAG(ref) == TAG_EMPTY)
        Py_RETURN_NONE;
    if (TAG(ref) == TAG_INNER)
        return Py_BuildValue("(y#y#)", HASH(ref), (Py_ssize_t)HASH_BYTES, VERSION(ref), (Py_ssize_t)VERSION_BYTES);
    return Py_BuildValue("(y#y#y#)", HASH(ref), (Py_ssize_t)HASH_BYTES, VERSION(ref), (Py_ssize_t)VERSION_BYTES,
                         KEY_HASH(ref), (Py_ssize_t)HASH_BYTES);
}

static int parse_ref(const unsigned char *data, Py_ssize_t size, Py_ssize_t *pos, Ref *out)
{
    if (*pos >= size || data[*pos] > TAG_LEAF)
        return -1;
    Py_ssize_t n = data[*pos] == TAG_EMPTY ? 1 : data[*pos] == TAG_INNER ? INNER_REF_BYTES : LEAF_REF_BYTES;
    if (*pos + n > size)
        return -1;
    memcpy(out->b, data + *pos, n);
    *pos += n;
    return 0;
}

/* The children of an encoded inner node (chain.smt.decode_inner), or ValueError. */
static int parse_node(PyObject *node, Ref *left, Ref *right)
{
    if (PyBytes_CheckExact(node)) {
        const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(node);
        Py_ssize_t size = PyBytes_GET_SIZE(node), pos = 0;
        if (parse_ref(data, size, &pos, left) == 0 && parse_ref(data, size, &pos, right) == 0 && pos == size)
            return 0;
    }
    PyErr_SetString(PyExc_ValueError, "malformed inner node");
    return -1;
}

/* The node from the cache, or else from get_inner. */
static int read_inner(Update *u, PyObject *id, Ref *left, Ref *right)
{
    PyObject *node = PyDict_GetItemWithError(u->cache, id);
    if (node != NULL)
        return parse_node(node, left, right);
    if (PyErr_Occurred())
        return -1;
    node = PyObject_CallOneArg(u->get_inner, id);
    if (node == NULL)
        return -1;
    int status = parse_node(node, left, right);
    Py_DECREF(node);
    return status;
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

static int add_stale_leaf(Update *u, const Ref *leaf)
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
        if (TAG(change->ref) != TAG_EMPTY)
            u->items[n++] = *change;
    }
    if (old != NULL && at == hi)
        u->items[n++] = *old;
    return n;
}

/* The functions below return -1 with an exception set, and write their result to `out`, which may be
 * one of their arguments. update and update_path return 1 if the subtree changed, 0 if it did not
 * (the reference returns the very ref it was given). */

/* The subtree at `depth` on the path of key_hash with these children: an inner node (written to
 * u->nodes), or the lone leaf or nothing, which moves up. */
static int join(Update *u, const unsigned char *key_hash, int depth, const Ref *left, const Ref *right, Ref *out)
{
    if (TAG(left) == TAG_EMPTY) {
        if (TAG(right) != TAG_INNER) {
            *out = *right;
            return 0;
        }
    }
    else if (TAG(right) == TAG_EMPTY && TAG(left) == TAG_LEAF) {
        *out = *left;
        return 0;
    }
    unsigned char data[1 + 2 * HASH_BYTES];
    Ref joined = {{TAG_INNER}};
    data[0] = 0x01;
    memcpy(data + 1, TAG(left) == TAG_EMPTY ? EMPTY_HASH : HASH(left), HASH_BYTES);
    memcpy(data + 1 + HASH_BYTES, TAG(right) == TAG_EMPTY ? EMPTY_HASH : HASH(right), HASH_BYTES);
    if (sha256(u, data, sizeof data, HASH(&joined)) < 0)
        return -1;
    memcpy(VERSION(&joined), u->stamp, VERSION_BYTES);

    Py_ssize_t left_size = ref_size(left), right_size = ref_size(right);
    PyObject *node = PyBytes_FromStringAndSize(NULL, left_size + right_size);
    PyObject *id = node != NULL ? inner_node_id(key_hash, depth, u->stamp) : NULL;
    int status = -1;
    if (id != NULL) {
        memcpy(PyBytes_AS_STRING(node), left->b, left_size);
        memcpy(PyBytes_AS_STRING(node) + left_size, right->b, right_size);
        status = PyDict_SetItem(u->nodes, id, node);
    }
    Py_XDECREF(id);
    Py_XDECREF(node);
    if (status == 0)
        *out = joined;
    return status;
}

/* The subtree at `depth` holding exactly these leaves, sorted by key hash. */
static int build(Update *u, int depth, const Item *items, Py_ssize_t n, Ref *out)
{
    if (n == 0) {
        *out = EMPTY_REF;
        return 0;
    }
    if (n == 1) {
        *out = *items[0].ref;
        return 0;
    }
    if (depth == KEY_BITS)
        return too_deep();
    Py_ssize_t mid = split(items, 0, n, items[0].key_hash, depth);
    Ref left, right;
    if (build(u, depth + 1, items, mid, &left) < 0 || build(u, depth + 1, items + mid, n - mid, &right) < 0)
        return -1;
    return join(u, items[0].key_hash, depth, &left, &right, out);
}

/* build, for a subtree that changed */
static int rebuild(Update *u, int depth, Py_ssize_t n, Ref *out)
{
    return build(u, depth, u->items, n, out) < 0 ? -1 : 1;
}

static int update_path(Update *u, const Ref *ref, int depth, Py_ssize_t at, Ref *out);

/* The subtree `ref` at `depth` with changes[lo:hi) applied (all on its path). */
static int update(Update *u, const Ref *ref, int depth, Py_ssize_t lo, Py_ssize_t hi, Ref *out)
{
    if (TAG(ref) == TAG_EMPTY) {
        Py_ssize_t n = gather(u, lo, hi, NULL, 0);
        if (n > 0)
            return rebuild(u, depth, n, out);
        *out = *ref;
        return 0;
    }
    if (TAG(ref) == TAG_LEAF) {
        Item old = {KEY_HASH(ref), ref};
        Py_ssize_t at = bisect(u->changes, lo, hi, old.key_hash);
        if (at < hi && memcmp(u->changes[at].key_hash, old.key_hash, HASH_BYTES) == 0) {
            const Ref *new = u->changes[at].ref;
            if (TAG(new) == TAG_EMPTY || memcmp(HASH(new), HASH(ref), HASH_BYTES) != 0) {
                if (add_stale_leaf(u, ref) < 0)
                    return -1;
                return rebuild(u, depth, gather(u, lo, hi, NULL, 0), out);
            }
            u->kept[at] = 1;
        }
        Py_ssize_t n = gather(u, lo, hi, &old, at);
        if (n > 1)
            return rebuild(u, depth, n, out);
        *out = *ref; /* the old leaf alone */
        return 0;
    }
    if (hi - lo == 1)
        return update_path(u, ref, depth, lo, out);

    /* changes[lo:hi) are two or more key hashes sharing this subtree's depth-bit prefix: depth < 256 */
    const unsigned char *key_hash = u->changes[lo].key_hash;
    PyObject *id = inner_node_id(key_hash, depth, VERSION(ref));
    if (id == NULL)
        return -1;
    Ref left, right, new_left, new_right;
    int left_changed = 0, right_changed = 0, status = -1;
    if (read_inner(u, id, &left, &right) < 0)
        goto done;
    Py_ssize_t mid = split(u->changes, lo, hi, key_hash, depth);
    if (mid > lo && (left_changed = update(u, &left, depth + 1, lo, mid, &new_left)) < 0)
        goto done;
    if (hi > mid && (right_changed = update(u, &right, depth + 1, mid, hi, &new_right)) < 0)
        goto done;
    if (!left_changed && !right_changed) {
        *out = *ref;
        status = 0;
    }
    else if (add_stale_inner(u, id) == 0 &&
             join(u, key_hash, depth, left_changed ? &new_left : &left, right_changed ? &new_right : &right, out) == 0) {
        status = 1;
    }
done:
    Py_DECREF(id);
    return status;
}

/* `update` for a subtree that receives a single change: a loop down and back up. */
static int update_path(Update *u, const Ref *ref, int depth, Py_ssize_t at, Ref *out)
{
    const unsigned char *key_hash = u->changes[at].key_hash;
    Step *trail = u->trail;
    Ref end = *ref, new;
    int steps = 0, status = -1;

    while (TAG(&end) == TAG_INNER) {
        if ((trail[steps].id = inner_node_id(key_hash, depth, VERSION(&end))) == NULL)
            goto done;
        steps++;
        if (read_inner(u, trail[steps - 1].id, &trail[steps - 1].left, &trail[steps - 1].right) < 0)
            goto done;
        if (depth == KEY_BITS) {
            too_deep();
            goto done;
        }
        end = bit_at(key_hash, depth) ? trail[steps - 1].right : trail[steps - 1].left;
        depth++;
    }
    int changed;
    if (TAG(&end) == TAG_EMPTY || memcmp(KEY_HASH(&end), key_hash, HASH_BYTES) == 0) {
        const Ref *change = u->changes[at].ref;
        if (TAG(&end) != TAG_EMPTY) {
            if (TAG(change) != TAG_EMPTY && memcmp(HASH(change), HASH(&end), HASH_BYTES) == 0) {
                u->kept[at] = 1;
                *out = *ref;
                status = 0;
                goto done;
            }
            if (add_stale_leaf(u, &end) < 0)
                goto done;
        }
        new = *change;
        changed = TAG(&end) != TAG_EMPTY || TAG(change) != TAG_EMPTY;
    }
    else if ((changed = update(u, &end, depth, at, at + 1, &new)) < 0) {
        goto done;
    }
    if (!changed) {
        *out = *ref;
        status = 0;
        goto done;
    }
    for (int i = steps - 1; i >= 0; i--) {
        depth--;
        if (add_stale_inner(u, trail[i].id) < 0)
            goto done;
        int bit = bit_at(key_hash, depth);
        if (join(u, key_hash, depth, bit ? &trail[i].left : &new, bit ? &new : &trail[i].right, &new) < 0)
            goto done;
    }
    *out = new;
    status = 1;
done:
    for (int i = 0; i < steps; i++)
        Py_DECREF(trail[i].id);
    return status;
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
static int new_leaf(Update *u, const unsigned char *key_hash, PyObject *value, Ref *out)
{
    unsigned char data[1 + 2 * HASH_BYTES];
    data[0] = 0x00;
    memcpy(data + 1, key_hash, HASH_BYTES);
    if (hash_buffer(u, value, data + 1 + HASH_BYTES) < 0 || sha256(u, data, sizeof data, HASH(out)) < 0)
        return -1;
    TAG(out) = TAG_LEAF;
    memcpy(VERSION(out), u->stamp, VERSION_BYTES);
    memcpy(KEY_HASH(out), key_hash, HASH_BYTES);
    return 0;
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
    Update u = {.cache = cache, .get_inner = get_inner, .stamp = (const unsigned char *)PyBytes_AS_STRING(stamp)};
    Change *sorted = PyMem_Calloc(n + 1, sizeof(Change));
    u.changes = PyMem_Calloc(n + 1, sizeof(Item));
    u.leaves = PyMem_Calloc(n + 1, sizeof(Ref)); /* zeroed: the empty ref */
    u.kept = PyMem_Calloc(n + 1, 1);
    u.items = PyMem_Calloc(n + 1, sizeof(Item));
    u.trail = PyMem_Calloc(KEY_BITS + 1, sizeof(Step));
    PyObject *new_root = NULL, *leaves = NULL, *result = NULL;
    u.sha256 = EVP_MD_CTX_new();
    if (sorted == NULL || u.changes == NULL || u.leaves == NULL || u.kept == NULL || u.items == NULL ||
        u.trail == NULL || u.sha256 == NULL) {
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
        u.changes[i].ref = &u.leaves[i];
        if (sorted[i].value != Py_None && new_leaf(&u, sorted[i].key_hash, sorted[i].value, &u.leaves[i]) < 0)
            goto done;
    }
    if ((u.nodes = PyDict_New()) == NULL || (leaves = PyDict_New()) == NULL ||
        (u.stale_inner = PyList_New(0)) == NULL || (u.stale_leaves = PyList_New(0)) == NULL)
        goto done;
    Ref old_root, updated_root;
    int changed = 0;
    if (n > 0 && (root_to_ref(root, &old_root) < 0 || (changed = update(&u, &old_root, 0, 0, n, &updated_root)) < 0))
        goto done;
    if ((new_root = changed ? ref_to_root(&updated_root) : Py_NewRef(root)) == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (sorted[i].value == Py_None || u.kept[i])
            continue;
        PyObject *id = leaf_node_id(sorted[i].key_hash, u.stamp);
        PyObject *pair = PyTuple_Pack(2, sorted[i].key, sorted[i].value);
        int status = id != NULL && pair != NULL ? PyDict_SetItem(leaves, id, pair) : -1;
        Py_XDECREF(id);
        Py_XDECREF(pair);
        if (status < 0)
            goto done;
    }
    result = PyTuple_Pack(5, new_root, u.nodes, leaves, u.stale_inner, u.stale_leaves);
done:
    Py_XDECREF(new_root);
    Py_XDECREF(leaves);
    Py_XDECREF(u.nodes);
    Py_XDECREF(u.stale_inner);
    Py_XDECREF(u.stale_leaves);
    PyMem_Free(sorted);
    PyMem_Free(u.changes);
    PyMem_Free(u.leaves);
    PyMem_Free(u.kept);
    PyMem_Free(u.items);
    PyMem_Free(u.trail);
    EVP_MD_CTX_free(u.sha256);
    Py_DECREF(pairs);
    return result;
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
