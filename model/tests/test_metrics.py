import math
import unittest

import numpy as np

from metrics import mse, rank_average, spearman, spearman_numpy


class SpearmanTest(unittest.TestCase):
    def test_average_ranks_with_ties(self):
        np.testing.assert_array_equal(rank_average([10, 20, 20, 30]), [1, 2.5, 2.5, 4])
        np.testing.assert_array_equal(rank_average([3, 1, 3, 3]), [3, 1, 3, 3])

    def test_hand_computed_example_with_ties(self):
        # ranks a = [1, 2.5, 2.5, 4], ranks b = [1, 3, 2, 4]; centred: [-1.5,0,0,1.5], [-1.5,.5,-.5,1.5]
        # rho = 4.5 / sqrt(4.5 * 5) = sqrt(0.9)
        a, b = [1, 2, 2, 3], [1, 3, 2, 4]
        self.assertAlmostEqual(spearman_numpy(a, b), math.sqrt(0.9), places=12)
        self.assertAlmostEqual(spearman(a, b), math.sqrt(0.9), places=12)

    def test_matches_library_on_random_data_with_ties(self):
        rng = np.random.default_rng(0)
        a, b = rng.integers(0, 5, 200), rng.normal(size=200).round(1)
        self.assertAlmostEqual(spearman_numpy(a, b), spearman(a, b), places=10)

    def test_constant_input_is_nan(self):
        self.assertTrue(math.isnan(spearman_numpy([1, 1, 1], [1, 2, 3])))

    def test_mse(self):
        self.assertAlmostEqual(mse([0.5, 1.0], [0.0, 1.0]), 0.125)


if __name__ == "__main__":
    unittest.main()
