"""NNTrainer INI model files shipped with trainplan, loaded by file name (`--model mnist.ini`)."""
