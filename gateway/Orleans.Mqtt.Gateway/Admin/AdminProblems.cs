using Microsoft.AspNetCore.Http.HttpResults;

namespace Orleans.Mqtt.Gateway;

/// <summary>The admin API's errors as RFC 7807 problem details.</summary>
internal static class AdminProblems
{
    /// <summary>400: the request is not valid; <paramref name="detail"/> says which part and why.</summary>
    public static ProblemHttpResult BadRequest(string detail) =>
        TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Invalid request", detail: detail);

    /// <summary>404: the thing named does not exist.</summary>
    public static ProblemHttpResult NotFound(string detail) =>
        TypedResults.Problem(statusCode: StatusCodes.Status404NotFound, title: "Not found", detail: detail);

    /// <summary>The page size of a listing, or a problem naming the parameter.</summary>
    public static bool TryPageSize(int? limit, out int size, out ProblemHttpResult? problem)
    {
        size = limit ?? AdminApi.DefaultPageSize;
        problem = size is < 1 or > AdminApi.MaxPageSize
            ? BadRequest($"limit must be between 1 and {AdminApi.MaxPageSize} (was {size}).")
            : null;
        return problem is null;
    }
}
