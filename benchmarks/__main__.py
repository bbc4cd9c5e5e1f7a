import sys

if sys.argv[1:2] == ["models"]:  # python -m benchmarks models [...]: whole networks (benchmarks/models.py)
    from .models import main

    main(sys.argv[2:])
else:
    from .run import main

    main()
