namespace Orleans.Mqtt.Ownership.Tests;

/// <summary>The compare-and-swap contract every <see cref="ISessionOwnershipStore"/> keeps.</summary>
public abstract class SessionOwnershipStoreContractTests
{
    protected abstract ISessionOwnershipStore Store { get; }

    protected static string NewClientId() => "client-" + Guid.NewGuid().ToString("N");

    [Fact]
    public async Task Commit_on_an_absent_record_writes_it()
    {
        var clientId = NewClientId();
        var owner = new SessionOwner("gw-1", 7, 1);

        var commit = await Store.CommitAsync(clientId, owner, 0);

        Assert.True(commit.Committed);
        Assert.True(commit.Revision > 0);
        var (read, revision) = await Store.ReadAsync(clientId);
        Assert.Equal(owner, read);
        Assert.Equal(commit.Revision, revision);
    }

    [Fact]
    public async Task Commit_with_a_wrong_revision_returns_the_current_owner_and_revision()
    {
        var clientId = NewClientId();
        var first = new SessionOwner("gw-1", 1, 1);
        var written = await Store.CommitAsync(clientId, first, 0);

        var stale = await Store.CommitAsync(clientId, new SessionOwner("gw-2", 2, 2), 0);
        var wrong = await Store.CommitAsync(clientId, new SessionOwner("gw-2", 2, 2), written.Revision + 1000);

        Assert.Equal(new OwnershipCommit(false, written.Revision, first), stale);
        Assert.Equal(new OwnershipCommit(false, written.Revision, first), wrong);
        Assert.Equal((first, written.Revision), await Store.ReadAsync(clientId));
    }

    [Fact]
    public async Task Commit_on_the_current_revision_replaces_the_owner()
    {
        var clientId = NewClientId();
        var written = await Store.CommitAsync(clientId, new SessionOwner("gw-1", 1, 1), 0);
        var next = new SessionOwner("gw-2", 5, 2);

        var commit = await Store.CommitAsync(clientId, next, written.Revision);

        Assert.True(commit.Committed);
        Assert.True(commit.Revision > written.Revision);
        Assert.Equal((next, commit.Revision), await Store.ReadAsync(clientId));
    }

    [Fact]
    public async Task Commit_expecting_a_record_that_is_absent_conflicts()
    {
        var clientId = NewClientId();

        var commit = await Store.CommitAsync(clientId, new SessionOwner("gw-1", 1, 1), 42);

        Assert.Equal(new OwnershipCommit(false, 0, null), commit);
        Assert.Equal((null, 0), await Store.ReadAsync(clientId));
    }

    [Fact]
    public async Task Release_with_a_wrong_revision_fails_and_with_the_right_one_deletes()
    {
        var clientId = NewClientId();
        var owner = new SessionOwner("gw-1", 1, 1);
        var written = await Store.CommitAsync(clientId, owner, 0);

        var wrong = await Store.ReleaseAsync(clientId, written.Revision + 1000);
        Assert.Equal(new OwnershipCommit(false, written.Revision, owner), wrong);
        Assert.Equal((owner, written.Revision), await Store.ReadAsync(clientId));

        var released = await Store.ReleaseAsync(clientId, written.Revision);
        Assert.Equal(new OwnershipCommit(true, 0, null), released);
        Assert.Equal((null, 0), await Store.ReadAsync(clientId));
    }

    [Fact]
    public async Task Release_of_an_absent_record_fails()
    {
        var clientId = NewClientId();

        Assert.Equal(new OwnershipCommit(false, 0, null), await Store.ReleaseAsync(clientId, 0));
        Assert.Equal(new OwnershipCommit(false, 0, null), await Store.ReleaseAsync(clientId, 5));
    }

    [Fact]
    public async Task Client_ids_are_any_utf8()
    {
        var clientId = "ü/ключ/+#/" + Guid.NewGuid().ToString("N");
        var owner = new SessionOwner("gateway-ü", long.MaxValue, long.MinValue);

        var commit = await Store.CommitAsync(clientId, owner, 0);

        Assert.True(commit.Committed);
        Assert.Equal((owner, commit.Revision), await Store.ReadAsync(clientId));
    }
}

public sealed class InMemorySessionOwnershipStoreTests : SessionOwnershipStoreContractTests
{
    protected override ISessionOwnershipStore Store { get; } = new InMemorySessionOwnershipStore();
}
