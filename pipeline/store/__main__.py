"""`python -m pipeline.store {upgrade,current,check,revision -m MSG}`: schema migrations from the shell."""

from pipeline.store.migrate import main

main()
