"""Dataset builders shared by ``data_preprocess/`` commands and the tests."""
