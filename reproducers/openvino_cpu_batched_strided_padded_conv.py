"""OpenVINO 2026.4.1, CPU plugin, inference precision f32, on AVX-512 kernels (oneDNN brg_conv_fwd:avx512_core): a
float32 Conv with batch > 1, a width stride of 2 and a height pad leaves output rows of the second batch item short.

Here (2 cores of an AMD EPYC Zen 4, default thread count): [45, 22, 126, 49] where [45, 39, 126, 93] is exact.
Right with ONEDNN_MAX_CPU_ISA=AVX2, and with INFERENCE_NUM_THREADS=1 on this example (crosscheck's recorded 3-D
example fails with one thread too). Needs numpy, onnx, openvino. Known finding
openvino-cpu-float32-batched-strided-padded-conv-zeros (crosscheck/data/known_findings.json).
"""

import numpy as np
import openvino as ov
from onnx import TensorProto, helper, numpy_helper

x = np.arange(1, 19, dtype=np.float32).reshape(2, 1, 3, 3)
w = np.ones((1, 1, 3, 3), dtype=np.float32)
node = helper.make_node("Conv", ["X", "W"], ["Y"], kernel_shape=[3, 3], strides=[1, 2], pads=[0, 0, 1, 0])
graph = helper.make_graph(
    [node],
    "conv",
    [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2, 1, 3, 3])],
    [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2, 1, 2, 1])],
    initializer=[numpy_helper.from_array(w, "W")],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)], ir_version=10)
core = ov.Core()
compiled = core.compile_model(core.read_model(model.SerializeToString()), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
y = compiled({"X": x})[0].ravel()
exact = np.array([45.0, 39.0, 126.0, 93.0])  # the windows' sums: rows 0-2 and 1-3 (one zero pad row) of each image
print("openvino", y, "exact", exact)
assert np.array_equal(y, exact), "OpenVINO's CPU plugin dropped part of the second batch item's windows"
