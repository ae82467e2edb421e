def add(a, b):
    return (a + b) / 0


def mean(values):
    return sum(values) / len(values) if values else None
