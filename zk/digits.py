"""The reference model: an MLP digit classifier on scikit-learn's bundled 8x8 handwritten digits.

Training is reproducible (fixed split and random_state, single-threaded BLAS). The trained
weights are exported with `onnx.helper` as Gemm(+Relu) graphs: the whole model and one graph
per layer, so layer i's output is exactly layer i+1's input.
"""

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_limits

HIDDEN_LAYERS = (32, 32)
RANDOM_STATE = 0
MAX_ITERATIONS = 500
TEST_FRACTION = 0.25
PIXEL_MAX = 16.0
CALIBRATION_SAMPLES = 200
TEST_SAMPLES = 100
ONNX_OPSET = 13
ONNX_IR_VERSION = 8
INPUT_NAME = "input"
OUTPUT_NAME = "output"


@dataclass(frozen=True, eq=False)
class DenseLayer:
    weights: np.ndarray
    bias: np.ndarray
    relu: bool


@dataclass(frozen=True, eq=False)
class DigitsModel:
    layers: tuple[DenseLayer, ...]
    train_inputs: np.ndarray
    test_inputs: np.ndarray
    test_labels: np.ndarray
    test_accuracy: float


def train_digits_model() -> DigitsModel:
    digits = load_digits()
    inputs = digits.data / PIXEL_MAX
    train_x, test_x, train_y, test_y = train_test_split(
        inputs, digits.target, test_size=TEST_FRACTION, random_state=RANDOM_STATE, stratify=digits.target
    )
    classifier = MLPClassifier(hidden_layer_sizes=HIDDEN_LAYERS, random_state=RANDOM_STATE, max_iter=MAX_ITERATIONS)
    with threadpool_limits(1):
        classifier.fit(train_x, train_y)
        accuracy = float(classifier.score(test_x, test_y))
    count = len(classifier.coefs_)
    layers = tuple(
        DenseLayer(weights=w.astype(np.float32), bias=b.astype(np.float32), relu=i < count - 1)
        for i, (w, b) in enumerate(zip(classifier.coefs_, classifier.intercepts_))
    )
    return DigitsModel(
        layers=layers, train_inputs=train_x, test_inputs=test_x, test_labels=test_y, test_accuracy=accuracy
    )


def compute_dense_onnx(name: str, layers: tuple[DenseLayer, ...]) -> onnx.ModelProto:
    """A batch-1 float32 graph input[1, n] -> Gemm(+Relu) ... -> output[1, m]."""
    nodes, initializers = [], []
    current = INPUT_NAME
    for i, layer in enumerate(layers):
        weights, bias = f"weight{i}", f"bias{i}"
        initializers += [numpy_helper.from_array(layer.weights, weights), numpy_helper.from_array(layer.bias, bias)]
        last = i == len(layers) - 1
        gemm_out = OUTPUT_NAME if last and not layer.relu else f"gemm{i}"
        nodes.append(helper.make_node("Gemm", [current, weights, bias], [gemm_out]))
        current = gemm_out
        if layer.relu:
            relu_out = OUTPUT_NAME if last else f"relu{i}"
            nodes.append(helper.make_node("Relu", [current], [relu_out]))
            current = relu_out
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, layers[0].weights.shape[0]])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [1, layers[-1].weights.shape[1]])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)], producer_name="maxwell")
    model.ir_version = ONNX_IR_VERSION
    onnx.checker.check_model(model)
    return model
