"""Dense retrieval: a text encoder, corpus embeddings, and a faiss inner-product index.

* :mod:`.encoders`: :class:`~.encoders.Encoder` / :class:`~.encoders.EncoderConfig`, one
  encoder for corpus and queries;
* :mod:`.embeddings`: resumable corpus embedding (hours on CPU for a real catalogue);
* :mod:`.build`: embeddings -> faiss index (flat or HNSW), and corpus -> both;
* :mod:`.retriever`: :class:`~.retriever.DenseRetriever`;
* :mod:`.faiss_gpu`: whether faiss runs on GPU.
"""
