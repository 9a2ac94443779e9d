"""A bench drafted from the user's own corpus, reviewed by a person, held out of training.

Why: `ragkit eval` needs a bench, and a user with their own documents has none. This package
drafts one answer-first from an index (`ragkit bench draft`), stratified the way the practitioners'
recipe asks (knowledge easy/medium/hard, logic simple/complex, common), lets a person accept, edit
or reject each item (`ragkit bench review`), and checks that no training question copies a bench
question (`ragkit bench check-leakage`).

    facts.py      answer candidates from every chunk (ragkit.sftdata.spans), with what relates them
    pools.py      candidates per category: single facts, conflicts, computations, recurring facts
    writing.py    the model (or the rules) writes each candidate's question
    verify.py     the filters a drafted item must pass
    draft.py      `draft_bench`: the mix, languages, the resumable loop, the output
    leakage.py    nearest training question per bench item
    review.py     status written back atomically, the review page's app, the terminal review
"""
