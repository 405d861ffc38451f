namespace Orleans.Mqtt.Grains;

/// <summary>
/// <c>using (_lock.Read())</c> and <c>using (_lock.Write())</c> for a <see cref="ReaderWriterLockSlim"/>: the lock is
/// released however the block is left, without a try/finally in every method and without an allocation.
/// </summary>
internal static class LockScopes
{
    /// <summary>Enters the read lock until the returned scope is disposed.</summary>
    public static ReadScope Read(this ReaderWriterLockSlim rwLock)
    {
        rwLock.EnterReadLock();
        return new ReadScope(rwLock);
    }

    /// <summary>Enters the write lock until the returned scope is disposed.</summary>
    public static WriteScope Write(this ReaderWriterLockSlim rwLock)
    {
        rwLock.EnterWriteLock();
        return new WriteScope(rwLock);
    }

    /// <summary>A held read lock.</summary>
    public readonly ref struct ReadScope(ReaderWriterLockSlim rwLock)
    {
        /// <summary>Releases the read lock.</summary>
        public void Dispose() => rwLock.ExitReadLock();
    }

    /// <summary>A held write lock.</summary>
    public readonly ref struct WriteScope(ReaderWriterLockSlim rwLock)
    {
        /// <summary>Releases the write lock.</summary>
        public void Dispose() => rwLock.ExitWriteLock();
    }
}
