import sys

if sys.argv[1:2] == ["models"]:  # python -m benchmarks models [...]: whole networks (benchmarks/models.py)
    from .models import main

    main(sys.argv[2:])
elif sys.argv[1:2] == ["convs"]:  # python -m benchmarks convs [...]: convolutions' share of each network (model_convs.py)
    from .model_convs import main

    main(sys.argv[2:])
elif sys.argv[1:2] == ["detection"]:  # python -m benchmarks detection [...]: detector inference (benchmarks/detection.py)
    from .detection import main

    main(sys.argv[2:])
else:
    from .run import main

    main()
