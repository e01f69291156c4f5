import unittest

from democalc import product, total


class CalcTest(unittest.TestCase):
    def test_total(self):
        self.assertEqual(total(["1", "2", "3.5"]), 6.5)
        self.assertEqual(total([]), 0)

    def test_product(self):
        self.assertEqual(product(["2", "3"]), 6)

    def test_bad_number(self):
        with self.assertRaises(ValueError):
            total(["x"])


if __name__ == "__main__":
    unittest.main()
