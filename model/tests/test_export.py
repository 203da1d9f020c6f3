"""export.py: contract names, metadata, dynamic batch, determinism, trained flag."""

import hashlib
import os
import tempfile
import unittest

import onnx
import torch

from export import build_model
from tests.helpers import onnx_metadata, run_script


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


class ExportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        cls.a = os.path.join(d, "a.onnx")
        cls.b = os.path.join(d, "b.onnx")
        cls.other = os.path.join(d, "seed1.onnx")
        cls.ckpt = os.path.join(d, "seed1.pt")
        cls.trained = os.path.join(d, "trained.onnx")
        run_script("export.py", "--variant", "tiny", "--seed", "0", "--out", cls.a)
        run_script("export.py", "--variant", "tiny", "--seed", "0", "--out", cls.b)
        run_script("export.py", "--variant", "tiny", "--seed", "1", "--out", cls.other, "--save-weights", cls.ckpt)
        # Seed 0 model with seed 1's weights: --weights must win over the seed.
        run_script("export.py", "--variant", "tiny", "--seed", "0", "--weights", cls.ckpt, "--out", cls.trained,
                   "--training-data", "LaMem splits 1", "--license", "LaMem research terms")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_untrained_metadata(self):
        self.assertEqual(
            onnx_metadata(self.a),
            {
                "memscore.name": "resmemnet-tiny",
                "memscore.version": "1.0.0",
                "memscore.input_size": "224",
                "memscore.resize": "stretch",
                "memscore.resize_kernel": "lanczos3",
                "memscore.mean": "0.5,0.5,0.5",
                "memscore.std": "0.5,0.5,0.5",
                "memscore.trained": "false",
                "memscore.training_data": "none",
                "memscore.license": "none (seeded random initialisation)",
            },
        )

    def test_trained_metadata_with_weights(self):
        meta = onnx_metadata(self.trained)
        self.assertEqual(meta["memscore.trained"], "true")
        self.assertEqual(meta["memscore.training_data"], "LaMem splits 1")
        self.assertEqual(meta["memscore.license"], "LaMem research terms")
        # The weights, not the seed, decide the parameters: same file content as seed 1 apart from metadata.
        self.assertEqual(onnx.load(self.trained).graph, onnx.load(self.other).graph)

    def test_names_and_dynamic_batch(self):
        model = onnx.load(self.a)
        onnx.checker.check_model(model, full_check=True)
        self.assertEqual(model.opset_import[0].version, 17)
        self.assertEqual([i.name for i in model.graph.input], ["image"])
        self.assertEqual([o.name for o in model.graph.output], ["score", "gradcam"])
        self.assertEqual(dims(model.graph.input[0]), ["N", 3, 224, 224])
        self.assertEqual(dims(model.graph.output[0]), ["N"])
        self.assertEqual(dims(model.graph.output[1]), ["N", 7, 7])
        self.assertEqual(model.graph.input[0].type.tensor_type.elem_type, onnx.TensorProto.FLOAT)

    def test_lstm_initial_state_follows_batch(self):
        # The learned h0/c0 must be expanded to the runtime batch inside the graph; a constant
        # initial state of the tracing batch size would break any other batch size.
        graph = onnx.shape_inference.infer_shapes(onnx.load(self.a)).graph
        inits = {t.name for t in graph.initializer}
        producers = {o: n for n in graph.node for o in n.output}
        shapes = {v.name: dims(v) for v in graph.value_info}
        (lstm,) = [n for n in graph.node if n.op_type == "LSTM"]
        for state in lstm.input[5:7]:  # initial_h, initial_c
            self.assertNotIn(state, inits)
            self.assertEqual(producers[state].op_type, "Expand")
        for out in lstm.output[1:]:  # Y_h, Y_c: [1, N, 128]
            self.assertEqual(shapes[out], [1, "N", 128])
        self.assertEqual(shapes[lstm.input[0]], [15, "N", 128])  # steps 1..15, time-major

    def test_deterministic_bytes(self):
        self.assertEqual(sha256(self.a), sha256(self.b))
        self.assertNotEqual(sha256(self.a), sha256(self.other))

    def test_tiny_file_is_small(self):
        self.assertLess(os.path.getsize(self.a), 3 * 1024 * 1024)

    def test_wrong_variant_weights_rejected(self):
        with self.assertRaises(SystemExit):
            build_model("r50", 0, self.ckpt)

    def test_save_weights_round_trip(self):
        state = torch.load(self.ckpt)
        ref = build_model("tiny", 1).state_dict()
        self.assertEqual(state.keys(), ref.keys())
        for k in ref:
            torch.testing.assert_close(state[k], ref[k])


if __name__ == "__main__":
    unittest.main()
