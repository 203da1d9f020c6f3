"""export.py --precision fp16: float16 backbone, float32 contract and head."""

import os
import tempfile
import unittest

import onnx
from onnx import TensorProto

from tests.helpers import onnx_metadata, run_script


class ExportFp16Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.fp32 = os.path.join(cls.tmp.name, "fp32.onnx")
        cls.fp16 = os.path.join(cls.tmp.name, "fp16.onnx")
        cls.fp16_again = os.path.join(cls.tmp.name, "fp16-again.onnx")
        run_script("export.py", "--variant", "tiny", "--seed", "0", "--out", cls.fp32)
        run_script("export.py", "--variant", "tiny", "--seed", "0", "--precision", "fp16", "--out", cls.fp16)
        run_script("export.py", "--variant", "tiny", "--seed", "0", "--precision", "fp16", "--out", cls.fp16_again)
        cls.model = onnx.load(cls.fp16)
        cls.graph = cls.model.graph
        cls.types = {
            v.name: v.type.tensor_type.elem_type
            for v in onnx.shape_inference.infer_shapes(cls.model).graph.value_info
        }
        cls.inits = {i.name: i.data_type for i in cls.graph.initializer}

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_contract_unchanged(self):
        onnx.checker.check_model(self.model, full_check=True)
        self.assertEqual(onnx_metadata(self.fp16), onnx_metadata(self.fp32))
        self.assertEqual([i.name for i in self.graph.input], ["image"])
        self.assertEqual([o.name for o in self.graph.output], ["score", "gradcam"])
        for value in [*self.graph.input, *self.graph.output]:
            self.assertEqual(value.type.tensor_type.elem_type, TensorProto.FLOAT, value.name)

    def test_backbone_convolutions_in_fp16_projections_in_fp32(self):
        convs = [n for n in self.graph.node if n.op_type == "Conv"]
        half = [n for n in convs if self.inits.get(n.input[1]) == TensorProto.FLOAT16]
        full = [n for n in convs if self.inits.get(n.input[1]) == TensorProto.FLOAT]
        # 53 backbone convolutions (stem + 16 blocks x 3 + 4 downsamples); the 16 1x1 projections
        # of the pooled block outputs read float32.
        self.assertEqual((len(half), len(full)), (53, 16))
        for node in half:
            self.assertEqual(self.types.get(node.output[0]), TensorProto.FLOAT16, node.name)
        for node in full:
            self.assertEqual(self.types.get(node.output[0]), TensorProto.FLOAT, node.name)

    def test_head_and_gradcam_in_fp32(self):
        (lstm,) = [n for n in self.graph.node if n.op_type == "LSTM"]
        for weight in lstm.input[1:4]:
            self.assertEqual(self.inits.get(weight), TensorProto.FLOAT, weight)
        for node in self.graph.node:
            if node.op_type in ("Gemm", "MatMul", "Sigmoid", "Tanh", "Mul", "ReduceSum"):
                for out in node.output:
                    self.assertNotEqual(self.types.get(out), TensorProto.FLOAT16, f"{node.op_type} {node.name}")
        # Exactly one cast in (the input), and one out per float16 tensor the head reads: the 16
        # pooled block outputs and the last block's map for the Grad-CAM.
        casts = [n for n in self.graph.node if n.op_type == "Cast" and n.name.startswith("cast_")]
        to_half = [n for n in casts if n.attribute[0].i == TensorProto.FLOAT16]
        to_float = [n for n in casts if n.attribute[0].i == TensorProto.FLOAT]
        self.assertEqual([n.input[0] for n in to_half], ["image"])
        self.assertEqual(len(to_float), 17)

    def test_smaller_and_deterministic(self):
        self.assertLess(os.path.getsize(self.fp16), os.path.getsize(self.fp32))
        with open(self.fp16, "rb") as a, open(self.fp16_again, "rb") as b:
            self.assertEqual(a.read(), b.read())


if __name__ == "__main__":
    unittest.main()
