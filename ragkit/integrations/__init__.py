"""ragkit inside other frameworks: a LangChain retriever (langchain.py) and Ray batch embedding
for ingest (ray_embed.py). Each imports its framework only when used."""
