/* chain._events: ABCI events in protobuf wire format, for chain.state.
 *
 * A transfer emits twelve events; building them as protobuf objects attribute by attribute cost a
 * fifth of its instructions. Here an event is encoded in one call, and a tx's events reach its
 * result in one parse.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define LENGTH_DELIMITED 2
#define EVENT_TYPE 1       /* tendermint.abci.Event.type */
#define EVENT_ATTRIBUTES 2 /* tendermint.abci.Event.attributes */
#define ATTRIBUTE_KEY 1    /* tendermint.abci.EventAttribute.key, .value, .index */
#define ATTRIBUTE_VALUE 2
#define ATTRIBUTE_INDEX 3
#define MAX_ATTRIBUTES 64

static Py_ssize_t varint_size(Py_ssize_t n)
{
    Py_ssize_t size = 1;
    while (n >= 0x80) {
        n >>= 7;
        size++;
    }
    return size;
}

static char *put_varint(char *out, Py_ssize_t n)
{
    while (n >= 0x80) {
        *out++ = (char)((n & 0x7F) | 0x80);
        n >>= 7;
    }
    *out++ = (char)n;
    return out;
}

static char *put_field(char *out, int number, const char *data, Py_ssize_t size)
{
    *out++ = (char)((number << 3) | LENGTH_DELIMITED);
    out = put_varint(out, size);
    memcpy(out, data, size);
    return out + size;
}

static Py_ssize_t field_size(Py_ssize_t size)
{
    return 1 + varint_size(size) + size;
}

/* encode_event(kind, attributes) -> bytes: a tendermint.abci.Event whose attributes, (key, value)
 * pairs of str, are all indexed. */
static PyObject *encode_event(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *kind, *attributes;
    if (!PyArg_ParseTuple(args, "UO!:encode_event", &kind, &PyTuple_Type, &attributes))
        return NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(attributes);
    if (count > MAX_ATTRIBUTES) {
        PyErr_SetString(PyExc_ValueError, "too many attributes in one event");
        return NULL;
    }
    const char *text[2 * MAX_ATTRIBUTES + 1];
    Py_ssize_t size[2 * MAX_ATTRIBUTES + 1], inner[MAX_ATTRIBUTES];
    if ((text[0] = PyUnicode_AsUTF8AndSize(kind, &size[0])) == NULL)
        return NULL;
    Py_ssize_t total = field_size(size[0]);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *pair = PyTuple_GET_ITEM(attributes, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(pair, 0)) ||
            !PyUnicode_Check(PyTuple_GET_ITEM(pair, 1))) {
            PyErr_SetString(PyExc_TypeError, "an event attribute is a (key, value) pair of str");
            return NULL;
        }
        for (int j = 0; j < 2; j++) {
            Py_ssize_t at = 1 + 2 * i + j;
            if ((text[at] = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(pair, j), &size[at])) == NULL)
                return NULL;
        }
        inner[i] = field_size(size[1 + 2 * i]) + field_size(size[2 + 2 * i]) + 2;
        total += field_size(inner[i]);
    }
    PyObject *encoded = PyBytes_FromStringAndSize(NULL, total);
    if (encoded == NULL)
        return NULL;
    char *out = put_field(PyBytes_AS_STRING(encoded), EVENT_TYPE, text[0], size[0]);
    for (Py_ssize_t i = 0; i < count; i++) {
        *out++ = (char)((EVENT_ATTRIBUTES << 3) | LENGTH_DELIMITED);
        out = put_varint(out, inner[i]);
        out = put_field(out, ATTRIBUTE_KEY, text[1 + 2 * i], size[1 + 2 * i]);
        out = put_field(out, ATTRIBUTE_VALUE, text[2 + 2 * i], size[2 + 2 * i]);
        *out++ = (char)(ATTRIBUTE_INDEX << 3);
        *out++ = 1;
    }
    return encoded;
}

/* encode_repeated(number, items) -> bytes: each bytes item as length-delimited field `number`. */
static PyObject *encode_repeated(PyObject *Py_UNUSED(module), PyObject *args)
{
    int number;
    PyObject *items;
    if (!PyArg_ParseTuple(args, "iO!:encode_repeated", &number, &PyList_Type, &items))
        return NULL;
    if (number < 1 || number > 15) {
        PyErr_SetString(PyExc_ValueError, "field numbers 1 to 15 have a one-byte tag");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(items), total = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(items, i);
        if (!PyBytes_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "items must be bytes");
            return NULL;
        }
        total += field_size(PyBytes_GET_SIZE(item));
    }
    PyObject *encoded = PyBytes_FromStringAndSize(NULL, total);
    if (encoded == NULL)
        return NULL;
    char *out = PyBytes_AS_STRING(encoded);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(items, i);
        out = put_field(out, number, PyBytes_AS_STRING(item), PyBytes_GET_SIZE(item));
    }
    return encoded;
}

static PyMethodDef methods[] = {
    {"encode_event", encode_event, METH_VARARGS,
     "encode_event(kind, attributes) -> bytes\n\nA tendermint.abci.Event, every attribute indexed."},
    {"encode_repeated", encode_repeated, METH_VARARGS,
     "encode_repeated(number, items) -> bytes\n\nEach bytes item as length-delimited field `number`."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "chain._events",
    .m_doc = "ABCI events in protobuf wire format; see chain/state.py.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__events(void)
{
    return PyModule_Create(&module);
}
