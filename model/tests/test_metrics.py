import math
import unittest

import numpy as np

import metrics
from metrics import mse, rank_average, spearman, spearman_numpy


def spearman_by_definition(a, b) -> float:
    """Spearman rho straight from its definition, sharing no code with metrics.py: each value's
    rank is 1 + the number of smaller values + half the number of other equal values (the mean
    of the ranks a tie spans), and rho is the Pearson correlation of those ranks."""

    def ranks(x):
        x = list(x)
        return [1 + sum(v < xi for v in x) + (sum(v == xi for v in x) - 1) / 2 for xi in x]

    ra, rb = ranks(a), ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((p - ma) * (q - mb) for p, q in zip(ra, rb))
    return cov / math.sqrt(sum((p - ma) ** 2 for p in ra) * sum((q - mb) ** 2 for q in rb))


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

    def test_without_ties_equals_the_rank_difference_formula(self):
        # With distinct values, rho = 1 - 6 * sum(d^2) / (n (n^2 - 1)), d the rank differences.
        rng = np.random.default_rng(1)
        for n in (5, 37, 200):
            a, b = rng.permutation(n), rng.normal(size=n)
            d = np.argsort(np.argsort(a)) - np.argsort(np.argsort(b))
            expected = 1 - 6 * float((d * d).sum()) / (n * (n * n - 1))
            self.assertAlmostEqual(spearman_numpy(a, b), expected, places=10)
            self.assertAlmostEqual(spearman(a, b), expected, places=10)

    def test_matches_the_definition_on_random_data_with_ties(self):
        rng = np.random.default_rng(0)
        a, b = rng.integers(0, 5, 200), rng.normal(size=200).round(1)
        expected = spearman_by_definition(a, b)
        self.assertAlmostEqual(spearman_numpy(a, b), expected, places=10)
        # spearman() uses scipy when it is installed and spearman_numpy otherwise: either way it
        # must give the definition's value.
        self.assertAlmostEqual(spearman(a, b), expected, places=10)
        if metrics._scipy_spearmanr is not None:
            self.assertAlmostEqual(float(metrics._scipy_spearmanr(a, b).correlation), expected, places=10)

    def test_constant_input_is_nan(self):
        self.assertTrue(math.isnan(spearman_numpy([1, 1, 1], [1, 2, 3])))

    def test_mse(self):
        self.assertAlmostEqual(mse([0.5, 1.0], [0.0, 1.0]), 0.125)


if __name__ == "__main__":
    unittest.main()
