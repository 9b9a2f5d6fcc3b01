# Shared pytest setup. Test helpers such as datagen.py sit beside the tests and are imported by name
# (pytest puts this folder on sys.path because it has no __init__.py).
