"""Training pipeline of fervideo: rebuild and judge the emotion models on FER2013.

Imports Keras at module level; `fervideo` itself never imports this package (the CLI does,
lazily), so analysing video does not pay for it.
"""
