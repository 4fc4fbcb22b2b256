"""A prediction's input files: archives, placement into input/, workflow URLs, references, path confinement."""
