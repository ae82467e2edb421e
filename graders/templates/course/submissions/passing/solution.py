n = int(input())
numbers = [int(x) for x in input().split()] if n else []
print(sum(numbers))
