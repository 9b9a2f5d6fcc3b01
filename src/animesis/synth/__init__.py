"""The built-in dataset generator: procedurally drawn characters written in the seed's layout.

It only produces datasets; nothing else in the package depends on it except the evaluation,
which redraws built-in pictures with other backgrounds and light."""
